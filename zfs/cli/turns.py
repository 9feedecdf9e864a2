"""One pull of a file into a folder at a time: the next waits, then uses what the first got.

Two pulls of the same file into the same folder would write one temporary file (it is
named by the owner's resume key) and race to rename it. So a pull takes a lock file
next to it, ``.<digest of that key>.zfs-pull-lock``, with ``flock``; another pull of
that file into that folder waits its turn. The first writes its result into the lock
file before it removes it, so the one that waited can tell the file is already there
and say so instead of fetching it again. A pull that failed leaves no result: the next
one then downloads (resuming what the first verified).

The lock file exists only while a pull runs (``flock`` dies with its process, so one
left by a killed pull holds nobody up).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, Optional

from zfs.cli.errors import Interrupted

_POLL = 0.2     # seconds between two tries of a lock someone holds (Ctrl-C stays quick)


class Turn:
    """A pull's turn at a file in a folder; :meth:`record` leaves its result to the next."""

    def __init__(self, fd: int, previous: Optional[dict[str, Any]]) -> None:
        self._fd = fd
        self.previous = previous
        """What a pull that held the turn before us downloaded (and is still in place)."""

    def record(self, result: dict[str, Any]) -> None:
        """Leave ``result`` (path, size, ...) for a pull waiting for this turn."""
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(result).encode(), 0)


def _still_there(previous: dict[str, Any]) -> bool:
    """Whether the file a previous pull got is in place as it left it."""
    try:
        st = os.stat(previous["path"])
    except (OSError, KeyError, TypeError):
        return False
    return st.st_size == previous.get("size") and st.st_mtime_ns == previous.get("mtime_ns")


def _read(fd: int) -> Optional[dict[str, Any]]:
    try:
        text = os.pread(fd, 1 << 16, 0)
        record = json.loads(text) if text else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


@contextlib.contextmanager
def turn(folder: str, key: str, stop: threading.Event,
         on_wait: Callable[[], None]) -> Iterator[Turn]:
    """Wait for our turn at the file of ``key`` in ``folder`` (``on_wait`` is called once
    if someone else has it); Ctrl-C (``stop``) ends the wait.

    Raises:
        Interrupted: ``stop`` was set while we waited.
    """
    path = os.path.join(folder, f".{hashlib.sha256(key.encode()).hexdigest()[:32]}.zfs-pull-lock")
    waited = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not waited:
                        waited = True
                        on_wait()
                    if stop.wait(_POLL):
                        raise Interrupted("interrupted while waiting for the other pull")
            previous = _read(fd)
            try:
                ours = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                ours = False
            done = previous is not None and _still_there(previous)
            if not ours and not done:   # the one before us removed it as it left: again
                os.close(fd)
                fd = -1
                continue
            try:
                yield Turn(fd, previous if done else None)
            finally:
                if ours:            # removed while we hold it: whoever waits sees it is stale
                    os.unlink(path)
            return
        finally:
            if fd >= 0:
                os.close(fd)
