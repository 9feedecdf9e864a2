"""Push of a folder: ``sender`` (the app's ``push_tree`` and the actor that streams a
tree) and ``receiver`` (every inbound tree of a site), driving the cores of the same
relative path in ``zfs.protocol.push.tree``."""
