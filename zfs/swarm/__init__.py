"""Swarm push: a file pipelined through its targets, each chunk leaving the sender once.

The shells of :mod:`zfs.protocol.swarm`'s push cores: the sender's actor
(:mod:`zfs.swarm.sender`) and every target's relay actor (:mod:`zfs.swarm.relay`).
:func:`zfs.push_file` uses them from a few targets on, or when ``swarm=True``.
"""
