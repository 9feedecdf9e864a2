"""The push protocol for a tree: ``sender`` (one tree to its targets) and ``receiver``
(every inbound tree of a site). Once planned, a tree's stream moves as a file's does:
the sender core drives :class:`~zfs.protocol.push.sender.PushSender` over it."""
