"""The ``zfs-stream`` command (also ``python -m zfs``): run sites, push, share, pull, demo.

Every command is a thin edge over the library: it settles its settings (``settings``),
starts a site (``session``), calls the public API of ``zfs`` and draws progress
(``bars``). ``main`` assembles the command group.
"""
