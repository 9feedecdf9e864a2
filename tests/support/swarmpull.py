"""What the children of the pull-with-peers tests run (``tests.support.swarmpull:child_*``).

A recipient that pulls (slowly if asked), one that serves corrupted pieces, and one
that tells the owner it listens where nothing does: real sites in their own processes,
each fault made in the code of that process only.
"""

from __future__ import annotations

import os
import time
from typing import Any

import actors
from zfs import download
from zfs.swarm import download as swarm_download


def child_pull(site: actors.Site, owner: str, rid: str, dest: str, delay: float = 0.0,
               **kwargs: Any) -> Any:
    """Pull ``rid`` with peers into ``dest`` (``delay`` s after each chunk, to be slow)."""
    slow = (lambda progress: time.sleep(delay)) if delay else None  # slows it on purpose
    return download(site, owner, rid, dest, swarm=True, on_progress=slow, **kwargs)


def child_serve_corrupt(site: actors.Site) -> None:
    """From now on this process serves its peers pieces with one byte flipped."""
    def pread(fd: int, length: int, offset: int) -> bytes:
        data = bytearray(os.pread(fd, length, offset))
        data[len(data) // 2] ^= 0xFF
        return bytes(data)
    swarm_download.os = _Os(pread)          # type: ignore[attr-defined]


class _Os:
    """The ``os`` module as the swarm download sees it, with a lying ``pread``."""

    def __init__(self, pread: Any) -> None:
        self.pread = pread

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def child_advertise_nowhere(site: actors.Site) -> None:
    """From now on this process tells the owner it serves peers at a closed port."""
    original = swarm_download.SwarmDownloadActor.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._core.endpoint = "tcp://127.0.0.1:9"       # discard: nothing listens there
    swarm_download.SwarmDownloadActor.__init__ = init  # type: ignore[method-assign]
