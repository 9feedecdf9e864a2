"""The pull protocol for a tree: ``download`` (one tree RID at a recipient). The owner's
side is :class:`~zfs.protocol.pull.owner.Shares`, which serves a tree's stream as it
serves a file and its manifest and digests by pages."""
