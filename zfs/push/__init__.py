"""Push: a sender streams one file to one or more sites in lock-step, all or nothing.

``sender`` (the app's ``push_file`` and the actor that streams), ``receiver`` (every
inbound stream of a site), ``source`` (what a push reads from). Each shell drives the
core of the same name in ``zfs.protocol.push``.
"""
