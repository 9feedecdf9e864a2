"""zfs: move large files between sites over ZeroMQ, never holding a whole file in memory."""
