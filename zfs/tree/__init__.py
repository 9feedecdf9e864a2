"""What push and pull of folders share on disk: reading a tree, building one.

``walk`` turns a folder into its manifest; ``source`` reads the tree's virtual stream
from its files; ``staging`` builds a received tree beside its final place (in
``DEST/.zfs-partial/``), from what ``holdings`` finds already there, in folders opened
by ``folders`` (never through a link), and ``swap`` puts it there at once; ``modes``
says which permission bits a received entry gets; ``removal`` deletes trees. The pure rules live in :mod:`zfs.protocol.tree`.
"""
