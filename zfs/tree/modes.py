"""Which permission bits a received entry gets, and the process's umask.

A received entry keeps the source's permission bits minus the receiver's umask, never
setuid, setgid or sticky, and never group- or world-writable unless the receiver asks
(``shared_write``). Its owner can always read it (and enter and write a folder), so a
later push of the same tree can check and replace it.
"""

from __future__ import annotations

import os

from zfs.protocol.tree.manifest import Kind

_OWNER_NEEDS = {Kind.FILE: 0o400, Kind.DIR: 0o700, Kind.LINK: 0}


def received_mode(mode: int, kind: Kind, umask: int, shared_write: bool = False) -> int:
    """The bits an entry of ``kind`` that had ``mode`` at the source gets here."""
    bits = mode & 0o777 & ~umask
    if not shared_write:
        bits &= ~0o022
    return bits | _OWNER_NEEDS[kind]


def current_umask() -> int:
    """This process's umask, read without changing it (Linux), else by setting it back."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)       # racy against other threads; only where /proc lacks it
    os.umask(mask)
    return mask
