"""Files on disk: safe names, digests, chunked reads and temporary files.

Received bytes never land at their final name until they are complete and checked:
a :class:`PartialFile` is a hidden temporary file next to its final place, renamed
atomically on :meth:`PartialFile.commit` once its size and whole-file digest match.
Names that come from the network go through :func:`check_name` and are never used as
paths.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
import stat
from types import TracebackType
from typing import Optional, Type, Union

import xxhash

from zfs.errors import FileChanged, IntegrityError, SourceMissing, UnsafeName
from zfs.protocol.names import name_problem

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".zfs-partial"
#: Random temp-file keys start with this; keyed (resumable) partial files never do.
EPHEMERAL_KEY_PREFIX = "tmp-"
_EPHEMERAL = re.compile(r"^\..*\.tmp-[0-9a-f]{16}\.zfs-partial$", re.DOTALL)
# The temp name holds a prefix of the final name only, so that it stays within
# the file system's 255-byte limit whatever the final name's length.
_TEMP_NAME_PREFIX_BYTES = 120
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


def digest_range(fd: int, length: int, block_size: int = _REREAD_BYTES) -> tuple[str, int]:
    """Digest the first ``length`` bytes of the open file ``fd``.

    One buffer is reused, so memory stays flat whatever the file size.

    Returns:
        (hex digest, bytes read): fewer bytes than ``length`` when the file ends first.
    """
    digest = Digest()
    block = memoryview(bytearray(max(1, min(block_size, length))))
    done = 0
    while done < length:
        got = os.preadv(fd, [block[:min(len(block), length - done)]], done)
        if not got:
            break
        digest.update(block[:got])
        done += got
    return digest.hexdigest(), done


def _temp_name(name: str, key: str) -> str:
    prefix = name.encode("utf-8")[:_TEMP_NAME_PREFIX_BYTES].decode("utf-8", "ignore")
    return f".{prefix}.{key}{PARTIAL_SUFFIX}"


def sweep_stale_partials(dest_dir: Union[str, os.PathLike], older_than: float) -> list[str]:
    """Delete unkeyed partial files untouched for ``older_than`` seconds; return their paths.

    A receiver killed mid-stream cannot delete its partial file; the next receiver on
    that folder does, once no stream could still be writing it (its inactivity
    timeout has passed). Keyed partial files are kept: a download may resume them.
    """
    removed: list[str] = []
    cutoff = time.time() - older_than
    with os.scandir(os.fspath(dest_dir)) as entries:
        for entry in entries:
            if not _EPHEMERAL.match(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed.append(entry.path)
            except FileNotFoundError:
                pass
    return removed


class PartialFile:
    """A temporary file in ``dest_dir`` that becomes ``dest_dir/name`` on commit.

    The digest is computed while writes arrive in order; after an out-of-order write
    (or when resuming bytes already on disk) commit re-reads the file instead.
    Used as a context manager, it is discarded unless committed.

    Args:
        dest_dir: the folder of the final file (and of the temporary one).
        name: the final file name; checked with :func:`check_name`.
        key: a stable temp-file key for resuming; None picks a random one and
            refuses to reuse an existing file.
    """

    def __init__(self, dest_dir: Union[str, os.PathLike], name: str,
                 key: Optional[str] = None) -> None:
        self.name = check_name(name)
        self.dest_dir = os.fspath(dest_dir)
        if key is not None:
            check_name(key)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        if key is None:
            key = EPHEMERAL_KEY_PREFIX + secrets.token_hex(8)
            flags |= os.O_EXCL
        self.temp_path = os.path.join(self.dest_dir, _temp_name(name, key))
        self.final_path = os.path.join(self.dest_dir, self.name)
        self._fd: Optional[int] = os.open(self.temp_path, flags, 0o600)
        self.existing_size = os.fstat(self._fd).st_size
        self._size = self.existing_size
        self._digest: Optional[Digest] = Digest() if self.existing_size == 0 else None
        self._digest_pos = 0
        self._done = False

    @property
    def size(self) -> int:
        """The number of bytes the file holds (its highest written end)."""
        return self._size

    def write_at(self, offset: int, data: Buffer) -> None:
        """Write ``data`` at ``offset`` (without fsync: commit decides durability)."""
        fd = self._require_open()
        view = memoryview(data)
        written = 0
        while written < len(view):
            written += os.pwrite(fd, view[written:], offset + written)
        if self._digest is not None:
            if offset == self._digest_pos:
                self._digest.update(view)
                self._digest_pos += len(view)
            else:
                self._digest = None
        self._size = max(self._size, offset + len(view))

    def commit(self, expected_size: int, expected_digest: str, *, fsync: bool = False) -> str:
        """Check size and digest, then rename atomically into place.

        Args:
            fsync: flush the data to disk before the rename (slower, survives a crash).

        Returns:
            The final path.

        Raises:
            IntegrityError: size or digest differ; the temp file is deleted.
        """
        fd = self._require_open()
        try:
            actual_size = os.fstat(fd).st_size
            if actual_size != expected_size:
                raise IntegrityError(f"size {actual_size} != expected {expected_size}")
            digest = self._whole_digest(fd, actual_size)
            if digest != expected_digest:
                raise IntegrityError("digest mismatch")
            if fsync:
                os.fsync(fd)
            os.replace(self.temp_path, self.final_path)
        except BaseException:
            self.discard()
            raise
        self._close()
        self._done = True
        return self.final_path

    def discard(self) -> None:
        """Close and delete the temporary file (safe to call more than once)."""
        if self._done:
            return
        self._done = True
        self._close()
        try:
            os.unlink(self.temp_path)
        except FileNotFoundError:
            pass

    def _whole_digest(self, fd: int, size: int) -> str:
        if self._digest is not None and self._digest_pos == size:
            return self._digest.hexdigest()
        return digest_range(fd, size)[0]     # a short read ends in a digest mismatch

    def _require_open(self) -> int:
        if self._fd is None:
            raise ValueError("partial file already committed or discarded")
        return self._fd

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "PartialFile":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.discard()


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
