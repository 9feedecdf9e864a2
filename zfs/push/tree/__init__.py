"""Push of a folder: ``calls`` (the app's ``push_tree``), ``sender`` (the actor that
streams a tree) and ``receiver`` (every inbound tree of a site), the shells driving the
cores of the same relative path in ``zfs.protocol.push.tree``."""
