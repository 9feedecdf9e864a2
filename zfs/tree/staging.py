"""A received tree, built beside its final place and put there whole.

:class:`Staging` builds the tree in ``DEST/.zfs-partial/<staging name>/`` (a folder zfs
makes and no name from the network may take, as for files in progress,
:mod:`zfs.partials`) and, once every byte is checked, renames it to ``DEST/NAME`` in one
step. An older tree there is exchanged with it atomically (``renameat2`` with
``RENAME_EXCHANGE``) and then deleted, so ``DEST/NAME`` is at every moment the whole old
tree or the whole new one; where the kernel cannot exchange, the old tree is renamed
away first and the new one renamed in (a moment with no tree under the name, never half
of one).

Every folder is opened relative to its parent's descriptor with ``O_NOFOLLOW``, in the
staging tree and in the old tree alike: a link planted in either is never followed, so
a path from the network cannot lead out of ``DEST``. Files are written only if zfs made
them (regular, one link).

What is already there is used: files of the old tree with the size the manifest says
are hard-linked into the staging tree (never written: a file with more than one link is
only ever kept whole or dropped), and what an interrupted transfer of the same tree
left in the staging folder is kept. :meth:`Staging.holdings` lists both, for the other
side to check by digest.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import stat
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Optional

from zfs.files import Digest, digest_range
from zfs.partials import open_partial_dir
from zfs.protocol.names import PARTIAL_DIR
from zfs.protocol.tree.layout import Offer
from zfs.protocol.tree.manifest import Entry, Kind, Manifest
from zfs.protocol.tree.paths import parent_of
from zfs.tree.modes import received_mode
from zfs.tree.removal import remove_tree, throw_away
from zfs.tree.walk import DIR_FLAGS, NOFOLLOW

log = logging.getLogger(__name__)

_WRITE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | NOFOLLOW
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | NOFOLLOW
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_BLOCK = 4096


def _base(path: str) -> str:
    return path.rpartition("/")[2]


class Staging:
    """A tree of ``manifest`` being built for ``DEST/final_name`` under ``staging_name``.

    Args:
        dest_dir: the folder the tree goes to.
        final_name: the tree's name there (checked by the caller).
        staging_name: its folder in ``DEST/.zfs-partial/`` (the same for a resume).
        manifest: what the tree holds.
        umask, shared_write: how modes are received (:mod:`zfs.tree.modes`).
        inline_digests: digest each file written in order from its start as it comes,
            for :meth:`verify` (a download's; a push checks its whole stream instead).

    Raises:
        OSError: the folders cannot be made or opened, or a link sits where one goes.
    """

    def __init__(self, dest_dir: str, final_name: str, staging_name: str, manifest: Manifest,
                 umask: int = 0o022, shared_write: bool = False, max_open: int = 32,
                 inline_digests: bool = False) -> None:
        self.dest_dir, self.final_name, self.staging_name = dest_dir, final_name, staging_name
        self.manifest = manifest
        self.path = os.path.join(dest_dir, PARTIAL_DIR, staging_name)
        self.final_path = os.path.join(dest_dir, final_name)
        self._umask, self._shared = umask, shared_write
        self._max_open = max_open
        self._by_path = {e.path: i for i, e in enumerate(manifest.entries)}
        #: Per file, what writing it needs: (folder, name, size, mode, mtime).
        self._meta = [_file_meta(manifest.entries[i], umask, shared_write)
                      for i in manifest.files]
        self._present: set[int] = set()          # files the staging folder holds
        self._fresh: set[int] = set()            # files to create (none there)
        self._dirs: OrderedDict[str, int] = OrderedDict()
        self._files: OrderedDict[int, int] = OrderedDict()
        self._finished: set[int] = set()          # files whose modes and times are set
        self._inline: dict[int, tuple[Digest, int]] = {}
        self._inline_digests = inline_digests
        self._moded: set[int] = set()              # files open since made with their mode
        self._dest_fd, self._partial_fd, self._root_fd = self._open()

    def _open(self) -> tuple[int, int, int]:
        # Another transfer's cleanup may remove an empty partial folder between our
        # opening it and making our folder in it: open again (as PartialFile does).
        for attempt in range(3):
            dest_fd, partial_fd = open_partial_dir(self.dest_dir)
            try:
                try:
                    os.mkdir(self.staging_name, 0o700, dir_fd=partial_fd)
                except FileExistsError:
                    pass
                root = os.open(self.staging_name, DIR_FLAGS | NOFOLLOW, dir_fd=partial_fd)
                return dest_fd, partial_fd, root
            except FileNotFoundError:
                os.close(partial_fd)
                os.close(dest_fd)
                if attempt == 2:
                    raise
            except BaseException:
                os.close(partial_fd)
                os.close(dest_fd)
                raise
        raise AssertionError("unreachable")

    # -- what is there already

    def holdings(self, check_existing: bool) -> list[tuple[int, int]]:
        """Make the staging folder hold only what the manifest names, link in files of
        the old tree that may be kept, and list (file number, bytes held from its start).

        Files of the old tree are linked only when ``check_existing`` and their size is
        the manifest's; what the staging folder kept from an interrupted transfer is
        listed whatever ``check_existing`` says.
        """
        numbers = {entry_index: n for n, entry_index in enumerate(self.manifest.files)}
        held: dict[int, int] = {}
        self._clean("", self._root(), numbers, held)
        if check_existing:
            self._link_old(numbers, held)
        self._present = set(held)
        return sorted(held.items())

    def _clean(self, prefix: str, fd: int, numbers: dict[int, int],
               held: dict[int, int]) -> None:
        for item in list(os.scandir(fd)):
            path = f"{prefix}/{item.name}" if prefix else item.name
            index = self._by_path.get(path)
            entry = self.manifest.entries[index] if index is not None else None
            st = item.stat(follow_symlinks=False)
            if entry is not None and entry.kind is Kind.DIR and stat.S_ISDIR(st.st_mode):
                sub = os.open(item.name, DIR_FLAGS | NOFOLLOW, dir_fd=fd)
                try:
                    self._clean(path, sub, numbers, held)
                finally:
                    os.close(sub)
                continue
            if entry is not None and entry.kind is Kind.FILE and stat.S_ISREG(st.st_mode) \
                    and 0 < st.st_size <= entry.size \
                    and (st.st_nlink == 1 or st.st_size == entry.size):
                assert index is not None
                held[numbers[index]] = st.st_size
                continue
            if entry is not None and entry.kind is Kind.LINK and stat.S_ISLNK(st.st_mode) \
                    and os.readlink(item.name, dir_fd=fd) == entry.target:
                continue
            remove_tree(fd, item.name)

    def _link_old(self, numbers: dict[int, int], held: dict[int, int]) -> None:
        """Hard-link same-size files of the tree at the final place into the staging tree."""
        try:
            old_root = os.open(self.final_name, DIR_FLAGS | NOFOLLOW, dir_fd=self._dest_fd)
        except OSError:
            return                           # no old tree (or a link, or a file): nothing
        old_dirs: dict[str, Optional[int]] = {"": old_root}
        try:
            for index in self.manifest.files:
                number = numbers[index]
                entry = self.manifest.entries[index]
                if number in held or entry.size == 0:
                    continue
                folder = _open_path(old_dirs, parent_of(entry.path))
                if folder is None:
                    continue
                try:
                    st = os.stat(_base(entry.path), dir_fd=folder, follow_symlinks=False)
                    if not stat.S_ISREG(st.st_mode) or st.st_size != entry.size:
                        continue
                    self._make_dirs(parent_of(entry.path))
                    os.link(_base(entry.path), _base(entry.path), src_dir_fd=folder,
                            dst_dir_fd=self._dir(parent_of(entry.path)), follow_symlinks=False)
                except OSError as err:
                    log.debug("cannot keep %s of the old tree: %s", entry.path, err)
                    continue
                held[number] = entry.size
        finally:
            for fd in old_dirs.values():
                if fd is not None:
                    os.close(fd)

    def offers(self, holdings: Iterable[tuple[int, int]]) -> list[Offer]:
        """Digest what ``holdings`` lists (slow for big files: call it off the actor)."""
        out = []
        for number, length in holdings:
            fd = self._open_held(number)
            if fd is None:
                continue
            try:
                digest, got = digest_range(fd, length)
            finally:
                os.close(fd)
            if got == length:
                out.append(Offer(number, length, digest))
        return out

    def _open_held(self, number: int) -> Optional[int]:
        entry = self.manifest.file(number)
        try:
            fd = os.open(_base(entry.path), _READ_FLAGS, dir_fd=self._dir(parent_of(entry.path)))
        except OSError:
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return fd

    # -- making the tree

    def room_needed(self, own: Mapping[int, int]) -> tuple[int, int]:
        """(bytes, entries) this tree still needs on disk, given what it holds."""
        blocks = 0
        for number, index in enumerate(self.manifest.files):
            missing = self.manifest.entries[index].size - own.get(number, 0)
            blocks += -(-missing // _BLOCK)
        return blocks * _BLOCK, len(self.manifest.entries) - len(own)

    def check_room(self, own: Mapping[int, int]) -> None:
        """Refuse a tree the disk cannot hold, before a byte of it is written.

        Raises:
            OSError: ENOSPC, naming what is needed and what is free.
        """
        needed, entries = self.room_needed(own)
        vfs = os.fstatvfs(self._root())
        free = vfs.f_bavail * vfs.f_frsize
        if needed > free:
            raise OSError(errno.ENOSPC, f"not enough space: the tree needs {needed} more "
                          f"bytes, {free} free in {self.dest_dir}")
        if vfs.f_files and entries > vfs.f_favail:
            raise OSError(errno.ENOSPC, f"not enough inodes: the tree needs {entries}, "
                          f"{vfs.f_favail} free in {self.dest_dir}")

    def apply(self, own: Mapping[int, int]) -> None:
        """Keep only what ``own`` says is held; make the folders, links and empty files
        (after :meth:`holdings`, which says what is there).

        Raises:
            OSError: the disk is too small (checked first), or something cannot be made.
        """
        self.check_room(own)
        numbers = {entry_index: n for n, entry_index in enumerate(self.manifest.files)}
        for index, entry in enumerate(self.manifest.entries):
            if index == 0:
                continue
            if entry.kind is Kind.DIR:
                self._make_dirs(entry.path)
            elif entry.kind is Kind.LINK:
                self._make_link(entry)
            else:
                self._keep_or_drop(numbers[index], entry, own.get(numbers[index], 0))

    def _keep_or_drop(self, number: int, entry: Entry, own: int) -> None:
        name = _base(entry.path)
        if own == 0:
            if number in self._present:
                try:
                    os.unlink(name, dir_fd=self._dir(parent_of(entry.path)))
                except FileNotFoundError:
                    pass
                self._present.discard(number)
            self._fresh.add(number)
            if self._inline_digests:
                self._inline[number] = (Digest(), 0)
            if entry.size == 0:
                fd = self._writable(number)
                del self._files[number]
                try:
                    self._finish(number, fd)
                finally:
                    os.close(fd)
            return
        folder = self._dir(parent_of(entry.path))
        st = os.stat(name, dir_fd=folder, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode) or st.st_size < own:
            raise OSError(errno.EIO, f"{entry.path} of the staging tree changed meanwhile")

    def _make_link(self, entry: Entry) -> None:
        folder = self._dir(parent_of(entry.path))
        try:
            os.symlink(entry.target, _base(entry.path), dir_fd=folder)
        except FileExistsError:
            if os.readlink(_base(entry.path), dir_fd=folder) != entry.target:
                raise

    def write(self, number: int, offset: int, data: memoryview) -> None:
        """Write ``data`` at ``offset`` of file ``number``; its modes and time are set once
        its last byte is written."""
        fd = self._writable(number)
        done = 0
        while done < len(data):
            done += os.pwrite(fd, data[done:], offset + done)
        if self._inline:
            inline = self._inline.get(number)
            if inline is not None:
                digest, position = inline
                if position == offset:
                    digest.update(data)
                    self._inline[number] = (digest, position + len(data))
                else:
                    del self._inline[number]     # out of order: checked by reading
        if offset + len(data) == self._meta[number][2]:
            del self._files[number]
            try:
                self._finish(number, fd)
            finally:
                os.close(fd)

    def _writable(self, number: int) -> int:
        """The file's descriptor for writing: made now (``O_EXCL``: new, regular, one
        link, no check needed) or reopened, never through a link, checked."""
        fd = self._files.get(number)
        if fd is not None:
            self._files.move_to_end(number)
            return fd
        folder, name, _size, mode, _mtime = self._meta[number]
        if number in self._fresh:
            fd = os.open(name, _WRITE_FLAGS | os.O_EXCL, mode | 0o200, dir_fd=self._dir(folder))
            self._fresh.discard(number)
            if mode == (mode | 0o200) & ~self._umask:
                self._moded.add(number)
        else:
            fd = os.open(name, _WRITE_FLAGS, 0o600, dir_fd=self._dir(folder))
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                os.close(fd)
                raise OSError(errno.EPERM, f"{folder}/{name} is not a file zfs made (a link?)")
        self._files[number] = fd
        while len(self._files) > self._max_open:
            evicted, old = self._files.popitem(last=False)
            self._moded.discard(evicted)
            os.close(old)
        return fd

    def _finish(self, number: int, fd: int) -> None:
        """Set the file's mode and time (its last byte is written)."""
        _folder, _name, _size, mode, mtime = self._meta[number]
        if number in self._moded:
            self._moded.discard(number)      # made with it: no chmod
        else:
            os.fchmod(fd, mode)
        os.utime(fd, ns=(mtime, mtime))
        self._finished.add(number)

    # -- checking and committing

    def verify(self, files: Sequence[int], digests: Sequence[str]) -> list[int]:
        """The files of ``files`` whose bytes differ from ``digests`` (they are deleted,
        so a later run fetches them again)."""
        bad = []
        for number in files:
            entry = self.manifest.file(number)
            inline = self._inline.get(number)
            if inline is not None and inline[1] == entry.size:
                actual = inline[0].hexdigest()
            else:
                fd = self._open_held(number)
                actual = "" if fd is None else _digest_and_close(fd, entry.size)
            if actual != digests[number]:
                bad.append(number)
                try:
                    os.unlink(_base(entry.path), dir_fd=self._dir(parent_of(entry.path)))
                except OSError:
                    pass
        return bad

    def commit(self, no_clobber: bool = False) -> str:
        """Set every mode and time, then put the tree at ``DEST/final_name`` at once.

        Returns:
            The tree's final path.

        Raises:
            FileExistsError: ``no_clobber`` and something is at the final name.
            OSError: the tree cannot be renamed into place (it stays staged).
        """
        self._close_files()
        self._set_metadata()
        replaced = _rename_into_place(self._partial_fd, self.staging_name, self._dest_fd,
                                      self.final_name, no_clobber)
        root = self.manifest.root
        os.fchmod(self._root_fd, received_mode(root.mode, Kind.DIR, self._umask, self._shared))
        os.utime(self._root_fd, ns=(root.mtime_ns, root.mtime_ns))
        if replaced:
            throw_away(self._partial_fd, self.staging_name)
        self._close(remove_partial_dir=True)
        return self.final_path

    def _set_metadata(self) -> None:
        """Modes and times of what this run did not write to the end, folders last,
        deepest first (making an entry in a folder changes the folder's time)."""
        entries = self.manifest.entries
        numbers = {entry_index: n for n, entry_index in enumerate(self.manifest.files)}
        for index, entry in enumerate(entries):
            if entry.kind is Kind.FILE and numbers[index] not in self._finished:
                fd = self._open_held(numbers[index])
                if fd is None:
                    raise OSError(errno.EIO, f"{entry.path} vanished from the staging tree")
                try:
                    self._finish(numbers[index], fd)
                finally:
                    os.close(fd)
            elif entry.kind is Kind.LINK:
                os.utime(_base(entry.path), ns=(entry.mtime_ns, entry.mtime_ns),
                         dir_fd=self._dir(parent_of(entry.path)), follow_symlinks=False)
        for entry in reversed(entries[1:]):
            if entry.kind is Kind.DIR:
                fd = self._dir(entry.path)
                os.fchmod(fd, received_mode(entry.mode, Kind.DIR, self._umask, self._shared))
                os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))

    def discard(self) -> None:
        """Delete the staging tree (its bytes are wrong) and close."""
        self._close_files()
        throw_away(self._partial_fd, self.staging_name)
        self._close(remove_partial_dir=True)

    def close(self) -> None:
        """Close every descriptor and keep the staging tree (for a resume); marks it used
        now, so the sweep of abandoned trees counts from here."""
        if self._root_fd >= 0:
            try:
                os.utime(self._root_fd)
            except OSError:
                pass
        self._close_files()
        self._close(remove_partial_dir=False)

    # -- internals

    def _root(self) -> int:
        if self._root_fd < 0:
            raise ValueError("staging tree is closed")
        return self._root_fd

    def _dir(self, path: str) -> int:
        if not path:
            return self._root()
        fd = self._dirs.get(path)
        if fd is not None:
            self._dirs.move_to_end(path)
            return fd
        fd = os.open(_base(path), DIR_FLAGS | NOFOLLOW, dir_fd=self._dir(parent_of(path)))
        self._dirs[path] = fd
        while len(self._dirs) > self._max_open:
            os.close(self._dirs.popitem(last=False)[1])
        return fd

    def _make_dirs(self, path: str) -> None:
        if not path or path in self._dirs:
            return
        self._make_dirs(parent_of(path))
        try:
            os.mkdir(_base(path), 0o700, dir_fd=self._dir(parent_of(path)))
        except FileExistsError:
            pass
        self._dir(path)                      # a link in its place fails here (ELOOP)

    def _close_files(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()

    def _close(self, remove_partial_dir: bool) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1
        if self._partial_fd >= 0:
            if remove_partial_dir:
                try:
                    os.rmdir(PARTIAL_DIR, dir_fd=self._dest_fd)
                except OSError:
                    pass                     # others in progress there
            os.close(self._partial_fd)
            os.close(self._dest_fd)
            self._partial_fd = self._dest_fd = -1


def _file_meta(entry: Entry, umask: int, shared_write: bool) -> tuple[str, str, int, int, int]:
    folder, _, name = entry.path.rpartition("/")
    return (folder, name, entry.size, received_mode(entry.mode, Kind.FILE, umask, shared_write),
            entry.mtime_ns)


def _open_path(cache: dict[str, Optional[int]], path: str) -> Optional[int]:
    """The descriptor of folder ``path`` of an old tree, opened never through a link."""
    if path in cache:
        return cache[path]
    parent = _open_path(cache, parent_of(path))
    fd = None
    if parent is not None:
        try:
            fd = os.open(_base(path), DIR_FLAGS | NOFOLLOW, dir_fd=parent)
        except OSError:
            fd = None
    cache[path] = fd
    return fd


def _digest_and_close(fd: int, size: int) -> str:
    try:
        digest, got = digest_range(fd, size)
        return digest if got == size and os.fstat(fd).st_size == size else ""
    finally:
        os.close(fd)


def _renameat2(src_dir: int, src: str, dst_dir: int, dst: str, flags: int) -> None:
    """renameat2(2) through libc; OSError(ENOSYS) where it is missing."""
    libc = ctypes.CDLL(None, use_errno=True)
    call = getattr(libc, "renameat2", None)
    if call is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    if call(src_dir, os.fsencode(src), dst_dir, os.fsencode(dst), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), dst)


def _rename_into_place(src_dir: int, src: str, dst_dir: int, dst: str,
                       no_clobber: bool) -> bool:
    """Rename ``src`` to ``dst``, exchanging with what is there; True if something was
    (it is then at ``src``)."""
    try:
        _renameat2(src_dir, src, dst_dir, dst, _RENAME_NOREPLACE)
        return False
    except OSError as err:
        if err.errno == errno.EEXIST:
            if no_clobber:
                raise FileExistsError(errno.EEXIST, "exists and no_clobber is set", dst) from None
        elif err.errno not in (errno.ENOSYS, errno.EINVAL):
            raise
    try:
        _renameat2(src_dir, src, dst_dir, dst, _RENAME_EXCHANGE)
        return True
    except OSError as err:
        if err.errno == errno.ENOENT:        # gone meanwhile: a plain rename will do
            return _rename_into_place(src_dir, src, dst_dir, dst, no_clobber)
        if err.errno not in (errno.ENOSYS, errno.EINVAL):
            raise
    # No renameat2 here: the old one is moved aside first (never half a tree in place).
    aside = f"{src}.old"
    try:
        os.rename(dst, aside, src_dir_fd=dst_dir, dst_dir_fd=src_dir)
        had = True
    except FileNotFoundError:
        had = False
    if had and no_clobber:
        os.rename(aside, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
        raise FileExistsError(errno.EEXIST, "exists and no_clobber is set", dst)
    os.rename(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
    if had:
        os.rename(aside, src, src_dir_fd=src_dir, dst_dir_fd=src_dir)
    return had
