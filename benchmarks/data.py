"""Test data for the benchmarks: sizes, generated files, a warm page cache, a work dir.

Files are written block by block from a small pool of random bytes, so an 8 GiB file
never needs 8 GiB of memory, and read back through one reused buffer to warm the page
cache the same way before our run and before the baseline's.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

MiB = 1 << 20

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1 << 10,
    "m": 10**6, "mb": 10**6, "mib": 1 << 20,
    "g": 10**9, "gb": 10**9, "gib": 1 << 30,
    "t": 10**12, "tb": 10**12, "tib": 1 << 40,
}

_POOL_SIZE = 4 * MiB
_BLOCK = MiB


def parse_size(text: str) -> int:
    """Turn ``"1GiB"``, ``"512MiB"``, ``"10MB"`` or ``"4096"`` into bytes.

    Raises:
        ValueError: not a size.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (try 1GiB, 512MiB, 10MB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_size(size: int) -> str:
    """Say a byte count the way a reader thinks of it (binary units, as in the options)."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % (scale // 16) == 0:
            return f"{size / scale:g} {unit}"
    return f"{size} B"


def make_file(path: Path, size: int) -> None:
    """Write ``size`` random-ish bytes to ``path`` without holding the file in memory.

    One pool of ``os.urandom`` bytes is read at a shifting offset, so neighbouring
    blocks differ (nothing downstream can shortcut repeated blocks) at no CPU cost.
    """
    pool = memoryview(os.urandom(_POOL_SIZE + _BLOCK))
    written = 0
    with open(path, "wb", buffering=0) as out:
        block_no = 0
        while written < size:
            length = min(_BLOCK, size - written)
            start = (block_no * 4099) % _POOL_SIZE
            written += out.write(pool[start:start + length])
            block_no += 1


def warm(path: Path, incoming: int = 0, idle: float = 0.0) -> None:
    """Flush dirty pages, read ``path`` once so its pages are cached, and ready the
    memory that ``incoming`` bytes of received files will be cached in; or, with
    ``idle``, let the machine rest that many seconds instead.

    The flush (``os.sync``) keeps one run's written data from throttling the next
    run's writers. The memory: this VM hands pages that stay free for a few seconds
    back to its host (virtio-balloon free page reporting), and the next use of such a
    page costs the host a fault too. Writing 1 GiB into a file took 1.9 s of CPU into
    such memory and 0.2 s into pages a deleted file had just freed, so a receiver's
    rate depended on how long ago the previous run deleted its file: raw TCP swung
    between ~400 and ~2,600 MB/s. Writing and deleting a file of the incoming size
    right before each run hands both sides' receivers recycled pages, as on a machine
    that keeps its free memory. Resting instead hands both sides memory gone back to the
    host: the side that runs second no longer writes into the pages the first side's
    deleted file freed, which only it could use when its processes started fast enough.
    """
    os.sync()
    buffer = bytearray(_BLOCK)
    with open(path, "rb", buffering=0) as source:
        while source.readinto(buffer):
            pass
    if incoming:  # last: pages free for ~2 s go back to the host (a sync here took longer)
        _recycle_page_cache(path.parent / ".recycle", incoming + incoming // 8)
    elif idle:
        time.sleep(idle)


def _recycle_page_cache(scratch: Path, size: int) -> None:
    """Write ``size`` bytes to ``scratch`` and delete it: its cached pages become free."""
    make_file(scratch, size)
    scratch.unlink()


@contextlib.contextmanager
def workdir(base: str | None) -> Iterator[Path]:
    """Make a fresh directory under ``base`` (default: the temp dir) and remove it after."""
    path = Path(tempfile.mkdtemp(prefix="zfs-bench-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
