"""What a receiving side already holds of a tree, before a byte of it moves.

Two sources: what an interrupted transfer of the same tree left in its staging folder
(:func:`keep_staged`: files of the manifest kept, anything else removed), and files of
the old tree at the final name with the size the manifest says (:func:`link_old_files`:
hard-linked into the staging tree, never written; a file with more than one link is
only ever kept whole or dropped). The other side then checks each by digest.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from typing import Optional

from zfs.protocol.tree.manifest import Kind, Manifest
from zfs.tree.folders import Folders, base_name, open_existing
from zfs.tree.removal import remove_tree
from zfs.tree.walk import DIR_FLAGS, NOFOLLOW

log = logging.getLogger(__name__)


def keep_staged(manifest: Manifest, by_path: Mapping[str, int], numbers: Mapping[int, int],
                prefix: str, fd: int, held: dict[int, int]) -> None:
    """Keep in the staging folder ``fd`` (at ``prefix``) only what the manifest names,
    as it names it; note in ``held`` each file kept (number: bytes from its start)."""
    for item in list(os.scandir(fd)):
        path = f"{prefix}/{item.name}" if prefix else item.name
        index = by_path.get(path)
        entry = manifest.entries[index] if index is not None else None
        st = item.stat(follow_symlinks=False)
        if entry is not None and entry.kind is Kind.DIR and stat.S_ISDIR(st.st_mode):
            sub = os.open(item.name, DIR_FLAGS | NOFOLLOW, dir_fd=fd)
            try:
                keep_staged(manifest, by_path, numbers, path, sub, held)
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


def link_old_files(dest_fd: int, final_name: str, manifest: Manifest,
                   numbers: Mapping[int, int], held: dict[int, int], staged: Folders) -> None:
    """Hard-link same-size files of the tree at ``final_name`` into the staging tree
    ``staged``; note each in ``held`` (whole)."""
    try:
        old_root = os.open(final_name, DIR_FLAGS | NOFOLLOW, dir_fd=dest_fd)
    except OSError:
        return                           # no old tree (or a link, or a file): nothing
    old_dirs: dict[str, Optional[int]] = {"": old_root}
    try:
        for index in manifest.files:
            number, entry = numbers[index], manifest.entries[index]
            if number in held or entry.size == 0:
                continue
            folder = open_existing(old_dirs, entry.path.rpartition("/")[0])
            if folder is not None and _link_one(folder, entry.path, entry.size, staged):
                held[number] = entry.size
    finally:
        for fd in old_dirs.values():
            if fd is not None:
                os.close(fd)


def _link_one(old_folder: int, path: str, size: int, staged: Folders) -> bool:
    name = base_name(path)
    try:
        st = os.stat(name, dir_fd=old_folder, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            return False
        staged.make(path.rpartition("/")[0])
        os.link(name, name, src_dir_fd=old_folder, dst_dir_fd=staged.of(path),
                follow_symlinks=False)
    except OSError as err:
        log.debug("cannot keep %s of the old tree: %s", path, err)
        return False
    return True
