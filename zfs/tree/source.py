"""Reading a tree's virtual stream from its files: the sender's and the owner's side.

:class:`TreeSource` reads any range of the stream a :class:`~zfs.protocol.tree.layout.Layout`
describes into one buffer, piece by piece from the files it covers. Every file is opened
relative to its folder's descriptor with ``O_NOFOLLOW`` (never through a link put there
since the walk) and checked with ``fstat`` against the manifest's size and time, when
opened (unless it is read whole at once) and once its last byte is read: a file
changed meanwhile fails the transfer
(:class:`~zfs.errors.FileChanged`) instead of sending a mix of two versions.
"""

from __future__ import annotations

import mmap
import os
import stat
import threading
from collections import OrderedDict
from types import TracebackType
from typing import Optional, Type

from zfs.buffers import BufferPool
from zfs.errors import FileChanged, SourceMissing, TransferAborted
from zfs.files import Digest
from zfs.protocol.tree.layout import Layout
from zfs.protocol.tree.manifest import Manifest
from zfs.protocol.tree.paths import parent_of
from zfs.tree.walk import DIR_FLAGS, NOFOLLOW

_FILE_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | NOFOLLOW
_BLOCK = 4 << 20


class TreeSource:
    """The files of a walked tree, read as its virtual stream.

    Args:
        root: the tree's folder.
        manifest: what the walk found there.
        max_open: file descriptors kept open at once (least recently used closed first).

    Raises:
        SourceMissing: the folder cannot be opened.
    """

    def __init__(self, root: str, manifest: Manifest, max_open: int = 16) -> None:
        self.root = root
        self.manifest = manifest
        self.layout = Layout(manifest.sizes())
        try:
            self._root_fd: Optional[int] = os.open(root, DIR_FLAGS)
        except OSError as err:
            raise SourceMissing(f"cannot open the folder {root!r}: {err.strerror}") from err
        self._dirs: OrderedDict[str, int] = OrderedDict()
        self._files: OrderedDict[int, int] = OrderedDict()
        self._max_open = max_open
        self._block: Optional[memoryview] = None

    @property
    def size(self) -> int:
        """The whole stream's length: every file's bytes."""
        return self.layout.size

    def read(self, layout: Layout, offset: int, length: int,
             pool: Optional[BufferPool] = None) -> memoryview:
        """The ``length`` bytes at ``offset`` of the stream ``layout`` (a plan of this tree's),
        read into a buffer of ``pool`` (used again once nothing else holds it) or a fresh
        one; page-aligned either way (see :mod:`zfs.buffers`).

        Raises:
            FileChanged: a file is gone, or differs from the manifest.
        """
        if pool is not None and length <= pool.size:
            buffer = pool.take()
        else:
            buffer = mmap.mmap(-1, max(1, length))
        view = memoryview(buffer)[:length]
        sizes = layout.sizes
        for piece in layout.pieces(offset, length):
            whole = piece.offset == 0 and piece.length == sizes[piece.file]
            fd = self._file(piece.file, whole)
            got = 0
            while got < piece.length:
                n = os.preadv(fd, [view[piece.at + got:piece.at + piece.length]],
                              piece.offset + got)
                if not n:
                    raise FileChanged(f"{self._path(piece.file)!r} shrank while being read")
                got += n
            if piece.offset + piece.length == sizes[piece.file]:
                self._check(piece.file, fd)          # read to its end: unchanged since?
                self._close_file(piece.file)
        return view

    def digest(self, file: int, length: int, stop: Optional[threading.Event] = None) -> str:
        """The digest of file ``file``'s first ``length`` bytes (ends early once ``stop``
        is set: a stopping owner must not wait for a large file's digest).

        Raises:
            FileChanged: the file is gone, shorter, or differs from the manifest.
            TransferAborted: ``stop`` was set.
        """
        fd = self._file(file)
        digest = Digest()
        if self._block is None:              # one buffer for every digest of this source
            self._block = memoryview(mmap.mmap(-1, _BLOCK))
        block = self._block
        done = 0
        while done < length:
            if stop is not None and stop.is_set():
                raise TransferAborted("the owner is stopping")
            n = os.preadv(fd, [block[:min(len(block), length - done)]], done)
            if not n:
                raise FileChanged(f"{self._path(file)!r} shrank while being read")
            digest.update(block[:n])
            done += n
        self._check(file, fd)
        return digest.hexdigest()

    def range_digest(self, offset: int, length: int) -> str:
        """The digest of the whole stream's ``length`` bytes at ``offset``."""
        digest = Digest()
        pool = BufferPool(_BLOCK, keep=1)
        done = 0
        while done < length:
            take = min(_BLOCK, length - done)
            digest.update(self.read(self.layout, offset + done, take, pool))
            done += take
        return digest.hexdigest()

    def check_unchanged(self) -> None:
        """Raise FileChanged if any file's size or time differ from the manifest's now."""
        for number in range(len(self.manifest.files)):
            self._file(number)
            self._close_file(number)

    def _path(self, file: int) -> str:
        return os.path.join(self.root, self.manifest.file(file).path)

    def _file(self, file: int, whole: bool = False) -> int:
        """The open file ``file``; with ``whole`` it is about to be read to its end in one
        go and checked after (opened ``O_NONBLOCK``: a FIFO put in its place cannot block)."""
        fd = self._files.get(file)
        if fd is not None:
            self._files.move_to_end(file)
            return fd
        entry = self.manifest.file(file)
        folder = self._dir(parent_of(entry.path))
        try:
            fd = os.open(entry.path.rpartition("/")[2], _FILE_FLAGS, dir_fd=folder)
        except OSError as err:
            raise FileChanged(f"{self._path(file)!r} cannot be read: {err.strerror}") from err
        if whole is False:                   # read in parts: check before each part
            try:
                self._check(file, fd)
            except FileChanged:
                os.close(fd)
                raise
        self._files[file] = fd
        while len(self._files) > self._max_open:
            os.close(self._files.popitem(last=False)[1])
        return fd

    def _check(self, file: int, fd: int) -> None:
        entry = self.manifest.file(file)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != entry.size \
                or st.st_mtime_ns != entry.mtime_ns:
            raise FileChanged(f"{self._path(file)!r} changed since the folder was read")

    def _close_file(self, file: int) -> None:
        fd = self._files.pop(file, None)
        if fd is not None:
            os.close(fd)

    def _dir(self, path: str) -> int:
        if self._root_fd is None:
            raise ValueError("tree source is closed")
        if not path:
            return self._root_fd
        fd = self._dirs.get(path)
        if fd is not None:
            self._dirs.move_to_end(path)
            return fd
        parent = self._dir(parent_of(path))
        try:
            fd = os.open(path.rpartition("/")[2], DIR_FLAGS | NOFOLLOW, dir_fd=parent)
        except OSError as err:
            raise FileChanged(f"folder {os.path.join(self.root, path)!r} cannot be read: "
                              f"{err.strerror}") from err
        self._dirs[path] = fd
        while len(self._dirs) > self._max_open:
            os.close(self._dirs.popitem(last=False)[1])
        return fd

    def close(self) -> None:
        """Close every descriptor (safe to call more than once)."""
        for fd in [*self._files.values(), *self._dirs.values()]:
            os.close(fd)
        self._files.clear()
        self._dirs.clear()
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    def __enter__(self) -> TreeSource:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()
