"""Files being received: kept apart from user files until complete and checked.

A :class:`PartialFile` lives in ``DEST/.zfs-partial/`` (a folder zfs makes and no name
from the network may take), named ``push-<random>`` for a push and ``pull-<key>`` for a
download (the owner's key, the same for the same file shared again, so a rerun finds
and resumes it). On :meth:`PartialFile.commit` its size and whole-file digest are
checked and it is renamed to ``DEST/NAME`` in one atomic step; nothing else ever
appears under a final name, and no user file can be mistaken for a partial one.

Files are opened as the regular files zfs made, never through a link: the folder and
the file are opened relative to their parent's descriptor with ``O_NOFOLLOW``, then
checked with ``fstat`` (a regular file with one link), so a symlink or hard link planted
at either name is refused, not written through.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
import time
from types import TracebackType
from typing import Optional, Type, Union

from zfs.errors import IntegrityError
from zfs.files import Buffer, Digest, check_name, digest_range
from zfs.protocol.names import PARTIAL_DIR

_PUSH, _PULL = "push-", "pull-"
_MAX_KEY_BYTES = 200
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_dirs(dest_dir: str) -> tuple[int, int]:
    """Descriptors of ``dest_dir`` and of its partial folder (made if missing).

    Raises:
        OSError: either is not a folder; the partial folder is a link (ELOOP).
    """
    dest_fd = os.open(dest_dir, _DIR_FLAGS)
    try:
        try:
            os.mkdir(PARTIAL_DIR, 0o700, dir_fd=dest_fd)
        except FileExistsError:
            pass
        return dest_fd, os.open(PARTIAL_DIR, _DIR_FLAGS | _NOFOLLOW, dir_fd=dest_fd)
    except BaseException:
        os.close(dest_fd)
        raise


def complete_there(dest_dir: str, name: str, key: str, size: int) -> bool:
    """Whether ``dest_dir/name`` is a regular file of ``size`` bytes with no download of
    ``key`` in progress beside it: a file a download may check by digest and keep."""
    try:
        st = os.lstat(os.path.join(dest_dir, name))
    except OSError:
        return False
    partial = os.path.join(dest_dir, PARTIAL_DIR, _PULL + key)
    return stat.S_ISREG(st.st_mode) and st.st_size == size > 0 and not os.path.lexists(partial)


def check_room(dest_dir: str, size: Optional[int]) -> None:
    """Refuse a declared size the folder's disk cannot hold, before writing a byte.

    Raises:
        OSError: ENOSPC, naming the sizes.
    """
    if size is None:
        return
    free = shutil.disk_usage(dest_dir).free
    if size > free:
        raise OSError(errno.ENOSPC, f"not enough space: {size} bytes declared, {free} "
                      f"free in {dest_dir}")


def open_partial_dir(dest_dir: str) -> tuple[int, int]:
    """Descriptors of ``dest_dir`` and of its partial folder (made if missing, never a link).

    Raises:
        OSError: either is not a folder; the partial folder is a link (ELOOP).
    """
    return _open_dirs(dest_dir)


def _open_regular(name: str, dir_fd: int, exclusive: bool) -> int:
    """Open (or create) ``name`` in ``dir_fd`` as a regular file with one link, or refuse."""
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | _NOFOLLOW | (os.O_EXCL if exclusive else 0)
    fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise OSError(errno.EPERM, f"{name} is not a file zfs made (a link, or not regular)")
    return fd


class PartialFile:
    """A file being received into ``dest_dir``, that becomes ``dest_dir/name`` on commit.

    The digest is computed while writes arrive in order; after an out-of-order write
    (or when resuming bytes already on disk) commit re-reads the file instead.
    Used as a context manager, it is discarded unless committed.

    Args:
        dest_dir: the folder of the final file.
        name: the final file name; checked with :func:`~zfs.files.check_name`.
        key: a stable key for resuming (a download's); None picks a random one and
            refuses to reuse an existing file (a push's).

    Raises:
        OSError: the folder cannot hold it, or a link sits where it would go.
        UnsafeName: ``name`` or ``key`` is not a plain name.
    """

    def __init__(self, dest_dir: Union[str, os.PathLike[str]], name: str,
                 key: Optional[str] = None) -> None:
        self.name = check_name(name)
        self.dest_dir = os.fspath(dest_dir)
        if key is not None and len(check_name(key).encode()) > _MAX_KEY_BYTES:
            raise OSError(errno.ENAMETOOLONG, f"resume key over {_MAX_KEY_BYTES} bytes")
        self.temp_name = _PULL + key if key is not None else _PUSH + secrets.token_hex(8)
        self.temp_path = os.path.join(self.dest_dir, PARTIAL_DIR, self.temp_name)
        self.final_path = os.path.join(self.dest_dir, self.name)
        self._dest_fd = self._dir_fd = -1
        self._done = False
        #: discard() could not delete the file (its folder turned read-only, say).
        self.left_behind = False
        self._fd: Optional[int] = self._open(key is None)
        self.existing_size = os.fstat(self._fd).st_size
        self._size = self.existing_size
        self._digest: Optional[Digest] = Digest() if self.existing_size == 0 else None
        self._digest_pos = 0

    def _open(self, exclusive: bool) -> int:
        """Open the dirs and the file; again if another file's cleanup removed the folder
        between the two (it goes once empty)."""
        for attempt in range(3):
            self._dest_fd, self._dir_fd = _open_dirs(self.dest_dir)
            try:
                return _open_regular(self.temp_name, self._dir_fd, exclusive)
            except FileNotFoundError:
                self._close_dirs()
                if attempt == 2:
                    raise
            except BaseException:
                self._close_dirs()
                raise
        raise AssertionError("unreachable")

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

    def digest_prefix(self, length: int) -> str:
        """The digest of the first ``length`` bytes held (read through our descriptor)."""
        return digest_range(self._require_open(), length)[0]

    def commit(self, expected_size: int, expected_digest: str, *, fsync: bool = False) -> str:
        """Check size and digest, then rename atomically into place.

        Args:
            fsync: flush the data to disk before the rename (slower, survives a crash).

        Returns:
            The final path.

        Raises:
            IntegrityError: size or digest differ; the temp file is deleted.
            OSError: the rename failed; the temp file is deleted (or left to retry).
        """
        fd = self._require_open()
        try:
            actual_size = os.fstat(fd).st_size
            if actual_size != expected_size:
                raise IntegrityError(f"size {actual_size} != expected {expected_size}")
            if self._whole_digest(fd, actual_size) != expected_digest:
                raise IntegrityError("digest mismatch")
            if fsync:
                os.fsync(fd)
            os.replace(self.temp_name, self.name, src_dir_fd=self._dir_fd,
                       dst_dir_fd=self._dest_fd)
        except BaseException:
            self.discard()
            raise
        self._done = True
        self.close()
        return self.final_path

    def discard(self) -> bool:
        """Close and delete the temporary file; False if it could not be deleted now.

        Safe to call more than once. A file left behind (a folder turned read-only) is
        the caller's to retry: its ``temp_path`` names it.
        """
        if self._done:
            return not self.left_behind
        self._done = True
        try:
            if self._dir_fd >= 0:
                os.unlink(self.temp_name, dir_fd=self._dir_fd)
            else:                            # closed for a resume, discarded after all
                os.unlink(self.temp_path)
        except FileNotFoundError:
            pass
        except OSError:
            self.left_behind = True
        finally:
            self.close()
        return not self.left_behind

    def close(self) -> None:
        """Close the file and keep it (for a resume); safe to call more than once."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._close_dirs()

    def _close_dirs(self) -> None:
        if self._done and self._dest_fd >= 0:   # the last file in progress takes the folder
            try:
                os.rmdir(PARTIAL_DIR, dir_fd=self._dest_fd)
            except OSError:
                pass                        # not empty (others in progress), or not ours
        for fd in (self._dir_fd, self._dest_fd):
            if fd >= 0:
                os.close(fd)
        self._dir_fd = self._dest_fd = -1

    def _whole_digest(self, fd: int, size: int) -> str:
        if self._digest is not None and self._digest_pos == size:
            return self._digest.hexdigest()
        return digest_range(fd, size)[0]     # a short read ends in a digest mismatch

    def _require_open(self) -> int:
        if self._fd is None:
            raise ValueError("partial file already committed, discarded or closed")
        return self._fd

    def __enter__(self) -> PartialFile:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.discard()


def sweep_stale_partials(dest_dir: Union[str, os.PathLike[str]], older_than: float,
                         in_use: frozenset[str] = frozenset()) -> list[str]:
    """Delete push partial files untouched for ``older_than`` seconds; return their paths.

    A receiver killed mid-stream cannot delete its partial file; the next receiver on
    that folder does, once no stream could still be writing it. Only ``push-*`` files in
    the partial folder are candidates (zfs made them; ``in_use`` names those it still
    writes): a download's ``pull-*`` file is kept for a resume, and no user file is
    ever looked at.
    """
    folder = os.path.join(os.fspath(dest_dir), PARTIAL_DIR)
    removed: list[str] = []
    cutoff = time.time() - older_than
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if not entry.name.startswith(_PUSH) or entry.name in in_use:
            continue
        try:
            if entry.is_file(follow_symlinks=False) and \
                    entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(entry.path)
        except FileNotFoundError:
            pass
    return removed
