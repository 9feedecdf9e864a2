"""Pull of a folder: ``download`` (the actor that fetches one tree RID), driving the core
of the same relative path in ``zfs.protocol.pull.tree``. The owner's side is
:mod:`zfs.pull.owner`, which serves a tree's stream as it serves a file."""
