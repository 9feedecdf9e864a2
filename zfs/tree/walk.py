"""A folder on disk, read into a manifest: every folder, file and link under it.

Each folder is opened relative to its parent's descriptor with ``O_NOFOLLOW``, so the
walk never leaves the tree through a link: a link is an entry of its own, sent only if
its target stays inside the tree (:func:`~zfs.protocol.tree.paths.link_problem`), and
refused otherwise. Special files (FIFOs, sockets, devices) and zfs's own partial folders
are skipped with a warning; a name that cannot travel (not UTF-8, too long) is refused.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass

from zfs.errors import SourceMissing, UnsafeTree
from zfs.protocol.names import PARTIAL_DIR
from zfs.protocol.tree.manifest import Entry, Kind, Manifest
from zfs.protocol.tree.paths import link_problem, path_problem
from zfs.protocol.errors import RemoteProtocolError

log = logging.getLogger(__name__)

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


@dataclass(frozen=True, slots=True)
class Walked:
    """A folder read: its manifest, and the paths skipped (special files)."""

    root: str
    manifest: Manifest
    skipped: tuple[str, ...]


def walk(root: str | os.PathLike[str]) -> Walked:
    """Read the folder ``root`` into a manifest.

    Raises:
        SourceMissing: ``root`` is not a readable folder.
        UnsafeTree: a link leads out of the tree, or a name cannot travel.
    """
    root = os.path.abspath(os.fspath(root))
    try:
        fd = os.open(root, DIR_FLAGS)
    except OSError as err:
        raise SourceMissing(f"cannot open the folder {root!r}: {err.strerror}") from err
    try:
        st = os.fstat(fd)
        entries = [Entry("", Kind.DIR, stat.S_IMODE(st.st_mode), st.st_mtime_ns)]
        skipped: list[str] = []
        _walk_into(fd, "", entries, skipped, root)
    finally:
        os.close(fd)
    try:
        manifest = Manifest(tuple(entries))
    except RemoteProtocolError as err:       # a name that cannot travel, say: which
        raise UnsafeTree(f"cannot send {root}: {err}") from None
    return Walked(root, manifest, tuple(skipped))


def _walk_into(fd: int, prefix: str, entries: list[Entry], skipped: list[str],
               root: str) -> None:
    try:
        listing = sorted(os.scandir(fd), key=lambda e: e.name)
    except OSError as err:
        raise SourceMissing(f"cannot list {os.path.join(root, prefix)!r}: {err.strerror}") from err
    for item in listing:
        path = f"{prefix}/{item.name}" if prefix else item.name
        try:
            st = item.stat(follow_symlinks=False)
        except OSError as err:
            raise SourceMissing(f"cannot read {os.path.join(root, path)!r}: "
                                f"{err.strerror}") from err
        if stat.S_ISDIR(st.st_mode) and item.name == PARTIAL_DIR:
            log.warning("skipped %s: zfs's own files in progress", os.path.join(root, path))
            skipped.append(path)
            continue
        kind = _kind(st.st_mode)
        if kind is None:
            log.warning("skipped %s: not a file, folder or link", os.path.join(root, path))
            skipped.append(path)
            continue
        mode, mtime = st.st_mode & 0o7777, st.st_mtime_ns   # paths are checked once, below
        if kind is Kind.LINK:
            target = os.readlink(item.name, dir_fd=fd)
            problem = path_problem(path) or link_problem(path, target)
            if problem is not None:
                raise UnsafeTree(f"{root}: {problem}; zfs sends links that stay inside the "
                                 f"folder only")
            entries.append(Entry(path, kind, mode, mtime, 0, target))
        elif kind is Kind.FILE:
            entries.append(Entry(path, kind, mode, mtime, st.st_size))
        else:
            entries.append(Entry(path, kind, mode, mtime))
            sub = os.open(item.name, DIR_FLAGS | NOFOLLOW, dir_fd=fd)
            try:
                _walk_into(sub, path, entries, skipped, root)
            finally:
                os.close(sub)


def _kind(mode: int) -> Kind | None:
    if stat.S_ISREG(mode):
        return Kind.FILE
    if stat.S_ISDIR(mode):
        return Kind.DIR
    if stat.S_ISLNK(mode):
        return Kind.LINK
    return None
