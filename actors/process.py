"""glibc's malloc settings for processes that move chunks: what a site sets by itself, and
what a process whose main job is hosting a site (``python -m actors``, the CLI) sets.

:func:`keep_chunk_buffers` is the one process-wide change a site makes when it starts
(``SiteOptions.keep_buffers``, on by default): without it a plain process that receives
1 MiB frames faults every page of every frame again (issue 19's measurements). It only
ever raises glibc's thresholds. :func:`tune_malloc` goes further (two arenas) and is for
entry points; a program that hosts a site as its main job may call it itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

#: Buffers below this come from the heap, not a fresh mmap each (glibc's maximum).
MMAP_THRESHOLD = 32 << 20
#: Free memory an arena keeps at its top instead of handing it back to the kernel.
TRIM_THRESHOLD = 16 << 20


class _Raised:
    """How far this process's mmap threshold was raised (a process-wide setting: it has
    one value per process, whatever the sites in it)."""

    mmap_threshold = 0


def keep_chunk_buffers(largest: int) -> bool:
    """Let glibc keep freed buffers up to ``largest`` bytes for reuse (a site calls it).

    The two thresholds of :func:`tune_malloc`, without its arena limit, sized to the
    largest payload frame a site moves: libzmq mallocs every received frame and our
    threads free it, and with glibc's defaults an arena hands the freed memory back to
    the kernel whenever ~2 MiB of it is free, so each received page faults again
    (measured: ~60,000 faults per GiB received in the ZeroMQ I/O thread; with this,
    ~2,000). Never lowers what an earlier call or :func:`tune_malloc` set. The cost is
    up to ``TRIM_THRESHOLD`` of free memory kept per arena instead of returned.

    Returns:
        Whether the settings are in place (False off glibc).
    """
    mmap_threshold = min(MMAP_THRESHOLD, largest + (1 << 16))
    if mmap_threshold <= _Raised.mmap_threshold:
        return True
    if not _mallopt((_M_MMAP_THRESHOLD, mmap_threshold), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return False
    _Raised.mmap_threshold = mmap_threshold
    return True


def _mallopt(*settings: tuple[int, int]) -> bool:
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return all([bool(libc.mallopt(param, value)) for param, value in settings])
    except (OSError, AttributeError):
        log.debug("mallopt is not available here", exc_info=True)
        return False


def tune_malloc(arenas: int = 2) -> bool:
    """Make glibc reuse freed chunk buffers instead of returning and refaulting them.

    Two settings, both measured on a site receiving 1 MiB payload frames:

    - Arenas: glibc gives busy threads arenas of their own (up to 8 per core) and
      keeps their freed 1 MiB buffers. In a 3-minute soak a long-lived site grew from
      46 to 86 MiB that way; with two arenas it stayed flat.
    - Trim and mmap thresholds: libzmq mallocs every received frame and our threads
      free it once handled. glibc hands an arena's top back to the kernel whenever
      2 MiB of it is free (its default, adapted to the largest freed buffer), which a
      window of chunks freed together reaches again and again; each handed-back page
      then faults on the next receive. The receiving I/O thread took 80 page faults
      and 205 us of CPU per 1 MiB frame; with these thresholds, 1 fault and 100 us,
      the same as a raw pyzmq receiver. An arena keeps at most ``TRIM_THRESHOLD`` free.

    Returns:
        Whether every setting took (False off glibc).
    """
    settings = ((_M_ARENA_MAX, arenas), (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                (_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if not _mallopt(*settings):
        return False
    _Raised.mmap_threshold = MMAP_THRESHOLD
    return True
