"""Files on disk: safe names, digests, and reading chunks of a file being sent.

Names that come from the network go through :func:`check_name` and are never used as
paths; files being received are ``zfs.partials``'.
"""

from __future__ import annotations

import os
import stat
import threading
from types import TracebackType
from typing import Optional, Type, Union

import xxhash

from zfs.buffers import BufferPool, pread_into
from zfs.errors import FileChanged, SourceMissing, UnsafeName
from zfs.protocol.names import name_problem

_REREAD_BYTES = 4 << 20

Buffer = Union[bytes, bytearray, memoryview]


def check_name(name: object) -> str:
    """Return ``name`` if it is a plain file name, safe to join to a folder.

    Raises:
        UnsafeName: not a str, empty, ``.`` or ``..``, with a ``/`` or ``\\`` or NUL,
            or longer than 255 UTF-8 bytes.
    """
    problem = name_problem(name)
    if problem is not None:
        raise UnsafeName(problem)
    assert isinstance(name, str)
    return name


class Digest:
    """A whole-file digest (xxh3-128) computed incrementally, chunk by chunk."""

    __slots__ = ("_hash",)

    def __init__(self) -> None:
        self._hash = xxhash.xxh3_128()

    def update(self, buf: Buffer) -> None:
        """Add the next bytes of the file."""
        self._hash.update(buf)

    def hexdigest(self) -> str:
        """Return the digest of the bytes added so far, as hex."""
        return str(self._hash.hexdigest())


def file_digest(path: Union[str, os.PathLike]) -> str:
    """Return the :class:`Digest` hex of a whole file, read in large blocks."""
    with open(path, "rb", buffering=0) as f:
        return digest_range(f.fileno(), os.fstat(f.fileno()).st_size)[0]


def digest_range(fd: int, length: int, block_size: int = _REREAD_BYTES,
                 stop: Optional[threading.Event] = None) -> tuple[str, int]:
    """Digest the first ``length`` bytes of the open file ``fd``.

    One buffer is reused, so memory stays flat whatever the file size. ``stop``, once
    set, ends a long digest early (its owner is stopping): the bytes read so far are
    returned, short.

    Returns:
        (hex digest, bytes read): fewer bytes than ``length`` when the file ends first.
    """
    digest = Digest()
    block = memoryview(bytearray(max(1, min(block_size, length))))
    done = 0
    while done < length and not (stop is not None and stop.is_set()):
        got = os.preadv(fd, [block[:min(len(block), length - done)]], done)
        if not got:
            break
        digest.update(block[:got])
        done += got
    return digest.hexdigest(), done


class ChunkSource:
    """A file opened for reading chunks at any offset, with a change check.

    Raises:
        SourceMissing: the path does not exist, is not a regular file, or cannot be read.
    """

    def __init__(self, path: Union[str, os.PathLike]) -> None:
        self.path = os.fspath(path)
        try:
            self._fd: Optional[int] = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as err:
            raise SourceMissing(f"cannot open {self.path!r}: {err.strerror}") from err
        st = os.fstat(self._fd)
        if not stat.S_ISREG(st.st_mode):
            self.close()
            raise SourceMissing(f"not a regular file: {self.path!r}")
        self.size = st.st_size
        self.mtime_ns = st.st_mtime_ns

    def read(self, offset: int, length: int) -> bytes:
        """Return up to ``length`` bytes at ``offset`` (fewer only at the end)."""
        fd = self._require_open()
        data = os.pread(fd, length, offset)
        if len(data) == length or offset + len(data) >= self.size:
            return data
        parts = [data]
        got = len(data)
        while got < length:
            more = os.pread(fd, length - got, offset + got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def read_into(self, offset: int, length: int, pool: BufferPool) -> memoryview:
        """Like :meth:`read`, into a buffer of ``pool`` (a view of it; see zfs.buffers)."""
        if length > pool.size:
            return memoryview(self.read(offset, length))
        return pread_into(self._require_open(), pool.take(), length, offset)

    def check_unchanged(self) -> None:
        """Raise FileChanged if the file's size or mtime differ from when opened."""
        try:
            st = os.stat(self.path)
        except OSError as err:
            raise FileChanged(f"{self.path!r} is gone: {err.strerror}") from err
        if st.st_size != self.size or st.st_mtime_ns != self.mtime_ns:
            raise FileChanged(f"{self.path!r} changed since it was opened")

    def close(self) -> None:
        """Close the file (safe to call more than once)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _require_open(self) -> int:
        if self._fd is None:
            raise ValueError("chunk source is closed")
        return self._fd

    def __enter__(self) -> "ChunkSource":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()
