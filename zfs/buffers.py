"""Chunk buffers that are used again instead of being allocated for every chunk.

A chunk read with ``os.pread`` is a fresh 1 MiB ``bytes`` per chunk. In a process
that keeps glibc's defaults, that buffer is either a fresh ``mmap`` or heap memory
that glibc handed back to the kernel when the last window of chunks was freed
together: each of its pages faults again on the next read (measured: ~44,000
faults and ~0.1-0.2 s of CPU per GiB sent, plus ``free`` -> ``madvise`` in pyzmq's
garbage thread). A :class:`BufferPool` reads into buffers it keeps.

A buffer handed to ZeroMQ with ``copy=False`` stays referenced (by pyzmq's frame)
until libzmq is done sending it, which may be after the sending thread moved on;
the pool therefore lends a buffer again only when nothing but the pool refers to
it (its reference count), never by a rule about acks.
"""

from __future__ import annotations

import mmap
import os
import sys

# References to a free buffer while ``take`` looks at it: the pool's list, the loop
# variable, and ``getrefcount``'s own argument.
_FREE_REFS = 3


class BufferPool:
    """Buffers of ``size`` bytes, at most ``keep`` of them kept when free.

    Used by one thread (the actor that reads the chunks).
    """

    def __init__(self, size: int, keep: int = 16) -> None:
        self.size = size
        self._keep = keep
        self._buffers: list[mmap.mmap] = []

    def take(self) -> mmap.mmap:
        """Return a buffer nobody else holds; a new one when all are in use.

        Buffers are anonymous maps, so they start on a page. Where a buffer starts
        matters on this kind of host (AMD EPYC, FSRM): the kernel copies into memory
        that starts 1-31 bytes past a page boundary about 5x slower (measured: pread
        of 1 GiB 0.60 s of CPU vs 0.12 s), and a ``bytearray`` of 1 MiB that malloc
        served by mmap starts 16 bytes past one.
        """
        for buf in self._buffers:
            if sys.getrefcount(buf) == _FREE_REFS:
                return buf
        buf = mmap.mmap(-1, self.size)
        if len(self._buffers) < self._keep:
            self._buffers.append(buf)
        return buf


def pread_into(fd: int, buf: mmap.mmap, length: int, offset: int) -> memoryview:
    """Read up to ``length`` bytes at ``offset`` into ``buf``; fewer only at the end."""
    view = memoryview(buf)[:length]
    got = 0
    while got < length:
        n = os.preadv(fd, [view[got:]], offset + got)
        if not n:
            break
        got += n
    return view[:got]
