"""Pure protocol cores of file streaming: no I/O, no clocks, time passed as ``now``.

Standard library only. ``wire`` is the typed messages sites exchange (one ``decode``
that refuses a malformed peer message, one ``encode``); ``push`` and ``pull`` hold the
cores their shells in ``zfs.push`` and ``zfs.pull`` drive; ``errors`` is the one
vocabulary of failure; ``states`` the one shape of a lifecycle; ``names`` the rule
for file names that arrive from the network.
"""
