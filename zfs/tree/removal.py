"""Deleting what zfs made in ``DEST/.zfs-partial/``: staging trees, replaced old trees.

Deletion walks by descriptors with ``O_NOFOLLOW`` and never follows a link out: a link is
removed, not its target. A folder made read-only is made writable by its owner first.
Staging trees of pushes that never came back are swept once untouched for a while.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import stat
import time

from zfs.protocol.names import PARTIAL_DIR
from zfs.tree.walk import DIR_FLAGS, NOFOLLOW

log = logging.getLogger(__name__)

PUSH_PREFIX = "tree-push-"   # a pushed tree being built (swept once stale)
PULL_PREFIX = "tree-pull-"   # a downloaded tree being built (kept for a resume)
TRASH_PREFIX = "trash-"      # a replaced tree being deleted


def remove_tree(dir_fd: int, name: str) -> None:
    """Delete ``name`` in ``dir_fd``, and everything under it if it is a folder.

    Raises:
        OSError: something could not be deleted (the rest is deleted as far as it can be).
    """
    try:
        os.unlink(name, dir_fd=dir_fd)
        return
    except FileNotFoundError:
        return
    except OSError as err:
        if err.errno not in (errno.EISDIR, errno.EPERM):
            raise
    try:
        fd = os.open(name, DIR_FLAGS | NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    try:
        st = os.fstat(fd)
        if not stat.S_IMODE(st.st_mode) & 0o200:
            os.fchmod(fd, stat.S_IMODE(st.st_mode) | 0o700)
        for entry in list(os.scandir(fd)):
            remove_tree(fd, entry.name)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def throw_away(partial_fd: int, name: str) -> None:
    """Delete ``name`` (a tree) in the partial folder: renamed to a trash name first, so
    what cannot be deleted now is swept later instead of blocking its name."""
    trash = f"{TRASH_PREFIX}{secrets.token_hex(8)}"
    try:
        os.rename(name, trash, src_dir_fd=partial_fd, dst_dir_fd=partial_fd)
    except FileNotFoundError:
        return
    try:
        remove_tree(partial_fd, trash)
    except OSError as err:
        log.warning("cannot delete all of %s now (%s); it is swept later", trash, err)


def sweep_stale_trees(dest_dir: str, older_than: float,
                      in_use: frozenset[str] = frozenset()) -> list[str]:
    """Delete pushed trees' staging folders untouched for ``older_than`` s, and trash.

    A pushed tree's staging folder stays after a failure so that the same push, started
    again, resumes; one untouched that long is taken as abandoned. ``in_use`` names the
    staging folders of trees in progress. Downloads' staging folders are kept (like
    their partial files). Returns what was deleted.
    """
    folder = os.path.join(dest_dir, PARTIAL_DIR)
    try:
        fd = os.open(folder, DIR_FLAGS | NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError, OSError):
        return []
    removed: list[str] = []
    cutoff = time.time() - older_than
    try:
        for entry in list(os.scandir(fd)):
            name = entry.name
            stale = name.startswith(PUSH_PREFIX) and name not in in_use
            if not (stale or name.startswith(TRASH_PREFIX)):
                continue
            try:
                if stale and entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue
                remove_tree(fd, name)
                removed.append(os.path.join(folder, name))
            except OSError as err:
                log.debug("cannot sweep %s: %s", name, err)
    finally:
        os.close(fd)
    return removed
