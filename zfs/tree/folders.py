"""Folders of a tree on disk, opened relative to their parents and never through a link.

A tree of many folders would need a descriptor for each; :class:`Folders` keeps the
most recently used ``max_open`` of them and reopens the rest on demand, each one
relative to its parent's descriptor with ``O_NOFOLLOW``, so a link planted anywhere in
the tree is never followed and a path from the network cannot lead out of it.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Optional

from zfs.protocol.tree.paths import parent_of
from zfs.tree.walk import DIR_FLAGS, NOFOLLOW


def base_name(path: str) -> str:
    """The last part of a tree-relative path."""
    return path.rpartition("/")[2]


class Folders:
    """Descriptors of the folders under ``root_fd`` (owned by the caller), cached."""

    def __init__(self, root_fd: int, max_open: int) -> None:
        self.root_fd = root_fd
        self._max_open = max_open
        self._open: OrderedDict[str, int] = OrderedDict()

    def get(self, path: str) -> int:
        """The descriptor of folder ``path`` ("" is the root).

        Raises:
            ValueError: the tree was closed.
            OSError: the folder is missing, or a link sits in its place (ELOOP).
        """
        if not path:
            if self.root_fd < 0:
                raise ValueError("staging tree is closed")
            return self.root_fd
        fd = self._open.get(path)
        if fd is not None:
            self._open.move_to_end(path)
            return fd
        fd = os.open(base_name(path), DIR_FLAGS | NOFOLLOW, dir_fd=self.get(parent_of(path)))
        self._open[path] = fd
        while len(self._open) > self._max_open:
            os.close(self._open.popitem(last=False)[1])
        return fd

    def of(self, path: str) -> int:
        """The descriptor of the folder holding ``path``."""
        return self.get(parent_of(path))

    def make(self, path: str) -> None:
        """Make folder ``path`` and those above it (mode 0700 until the tree is done)."""
        if not path or path in self._open:
            return
        self.make(parent_of(path))
        try:
            os.mkdir(base_name(path), 0o700, dir_fd=self.of(path))
        except FileExistsError:
            pass
        self.get(path)                       # a link in its place fails here (ELOOP)

    def close(self) -> None:
        """Close every cached descriptor (not the root's: the caller owns it)."""
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()


def open_existing(cache: dict[str, Optional[int]], path: str) -> Optional[int]:
    """The descriptor of folder ``path`` of an old tree (None if it is not a folder),
    opened never through a link; ``cache`` holds "" (the old root) and what was opened."""
    if path in cache:
        return cache[path]
    parent = open_existing(cache, parent_of(path))
    fd = None
    if parent is not None:
        try:
            fd = os.open(base_name(path), DIR_FLAGS | NOFOLLOW, dir_fd=parent)
        except OSError:
            fd = None
    cache[path] = fd
    return fd
