"""Pull: an owner shares files under RIDs; each recipient downloads at its own pace.

``owner`` (the actor serving chunks), ``transaction`` (the app's ``share``),
``download`` (the actor that fetches one RID). Each shell drives the core of the
same relative path in ``zfs.protocol.pull``.
"""
