"""A received tree, built beside its final place and put there whole.

:class:`Staging` builds the tree in ``DEST/.zfs-partial/<staging name>/`` (a folder zfs
makes and no name from the network may take, as for files in progress,
:mod:`zfs.partials`) and, once every byte is checked, puts it at ``DEST/NAME`` in one
step (:mod:`zfs.tree.swap`): ``DEST/NAME`` is at every moment the whole old tree or the
whole new one.

Every folder is opened relative to its parent's descriptor with ``O_NOFOLLOW``
(:mod:`zfs.tree.folders`), in the staging tree and in the old tree alike: a link
planted in either is never followed, so a path from the network cannot lead out of
``DEST``. Files are written only if zfs made them (regular, one link).

What is already there is used (:mod:`zfs.tree.holdings`): what an interrupted transfer
of the same tree left in the staging folder, and same-size files of the old tree,
hard-linked in. :meth:`Staging.holdings` lists both, for the other side to check by
digest.
"""

from __future__ import annotations

import errno
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
from zfs.tree.folders import Folders, base_name
from zfs.tree.modes import received_mode
from zfs.tree.holdings import keep_staged, link_old_files
from zfs.tree.removal import throw_away
from zfs.tree.swap import rename_into_place
from zfs.tree.walk import DIR_FLAGS, NOFOLLOW

_WRITE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | NOFOLLOW
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | NOFOLLOW
_BLOCK = 4096


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
        self._files: OrderedDict[int, int] = OrderedDict()
        self._finished: set[int] = set()          # files whose modes and times are set
        self._inline: dict[int, tuple[Digest, int]] = {}
        self._inline_digests = inline_digests
        self._moded: set[int] = set()              # files open since made with their mode
        self._dest_fd, self._partial_fd, self._root_fd = self._open()
        self._folders = Folders(self._root_fd, max_open)

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
        keep_staged(self.manifest, self._by_path, numbers, "", self._folders.get(""), held)
        if check_existing:
            link_old_files(self._dest_fd, self.final_name, self.manifest, numbers, held,
                           self._folders)
        self._present = set(held)
        return sorted(held.items())

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
            fd = os.open(base_name(entry.path), _READ_FLAGS, dir_fd=self._folders.of(entry.path))
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
        vfs = os.fstatvfs(self._folders.get(""))
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
                self._folders.make(entry.path)
            elif entry.kind is Kind.LINK:
                self._make_link(entry)
            else:
                self._keep_or_drop(numbers[index], entry, own.get(numbers[index], 0))

    def _keep_or_drop(self, number: int, entry: Entry, own: int) -> None:
        name = base_name(entry.path)
        if own == 0:
            if number in self._present:
                try:
                    os.unlink(name, dir_fd=self._folders.of(entry.path))
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
        folder = self._folders.of(entry.path)
        st = os.stat(name, dir_fd=folder, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode) or st.st_size < own:
            raise OSError(errno.EIO, f"{entry.path} of the staging tree changed meanwhile")

    def _make_link(self, entry: Entry) -> None:
        folder = self._folders.of(entry.path)
        try:
            os.symlink(entry.target, base_name(entry.path), dir_fd=folder)
        except FileExistsError:
            if os.readlink(base_name(entry.path), dir_fd=folder) != entry.target:
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
            fd = os.open(name, _WRITE_FLAGS | os.O_EXCL, mode | 0o200, dir_fd=self._folders.get(folder))
            self._fresh.discard(number)
            if mode == (mode | 0o200) & ~self._umask:
                self._moded.add(number)
        else:
            fd = os.open(name, _WRITE_FLAGS, 0o600, dir_fd=self._folders.get(folder))
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
                    os.unlink(base_name(entry.path), dir_fd=self._folders.of(entry.path))
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
        replaced = rename_into_place(self._partial_fd, self.staging_name, self._dest_fd,
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
                os.utime(base_name(entry.path), ns=(entry.mtime_ns, entry.mtime_ns),
                         dir_fd=self._folders.of(entry.path), follow_symlinks=False)
        for entry in reversed(entries[1:]):
            if entry.kind is Kind.DIR:
                fd = self._folders.get(entry.path)
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

    def _close_files(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()

    def _close(self, remove_partial_dir: bool) -> None:
        self._folders.close()
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = self._folders.root_fd = -1
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


def _digest_and_close(fd: int, size: int) -> str:
    try:
        digest, got = digest_range(fd, size)
        return digest if got == size and os.fstat(fd).st_size == size else ""
    finally:
        os.close(fd)
