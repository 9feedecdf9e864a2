"""A tree's manifest: its entries (folders, files, links) with their metadata, and one
binary encoding of them.

Entry 0 is the tree's root folder (path ``""``); every other entry has a relative path
(:mod:`zfs.protocol.tree.paths`) and comes after its folder, in the order of the paths'
parts, so a receiver can create them in order. Files are numbered in that order; the
tree's virtual stream is their contents end to end (:mod:`zfs.protocol.tree.layout`).

Encoding (big-endian): ``b"ZFT1"``, the entry count (u32), then per entry its kind
(one byte: ``d``, ``f``, ``l``), mode (u16, permission bits), mtime (i64 ns), size
(u64), path length (u16) and path (UTF-8), and for a link its target's length (u16)
and target. :func:`decode` refuses anything else with
:class:`~zfs.protocol.errors.RemoteProtocolError`: a manifest comes from a peer.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple, Optional

from zfs.protocol.errors import RemoteProtocolError
from zfs.protocol.tree.paths import link_problem, parent_of, path_problem

MAGIC = b"ZFT1"
_HEAD = struct.Struct(">4sI")
_ENTRY = struct.Struct(">cHqQH")
_LEN = struct.Struct(">H")
_MAX_INT = 2**63 - 1


class Kind(str, enum.Enum):
    """What an entry is."""

    DIR = "d"
    FILE = "f"
    LINK = "l"


_BY_BYTE = {kind.value.encode(): kind for kind in Kind}


class Entry(NamedTuple):
    """One folder, file or link of a tree (a NamedTuple: trees have many entries).

    Attributes:
        path: relative to the tree's root, parts joined by ``/`` (``""``: the root).
        mode: permission bits as the source had them (``0o7777`` at most).
        mtime_ns: modification time, nanoseconds since the epoch.
        size: bytes (files; 0 for folders and links).
        target: where a link points (links only).
    """

    path: str
    kind: Kind
    mode: int
    mtime_ns: int
    size: int = 0
    target: str = ""


class Manifest:
    """A tree's entries, checked, with its files numbered in order.

    Raises:
        RemoteProtocolError: the entries do not form a safe tree (see :func:`problem`).
    """

    __slots__ = ("entries", "files", "size")

    def __init__(self, entries: tuple[Entry, ...]) -> None:
        trouble = problem(entries)
        if trouble is not None:
            raise RemoteProtocolError(trouble)
        self.entries = entries
        #: The entry index of each file, in stream order.
        self.files: tuple[int, ...] = tuple(i for i, e in enumerate(entries)
                                            if e.kind is Kind.FILE)
        #: The bytes of all files together: the virtual stream's length.
        self.size = sum(entries[i].size for i in self.files)

    @property
    def root(self) -> Entry:
        """The root folder's entry."""
        return self.entries[0]

    def file(self, number: int) -> Entry:
        """The entry of file ``number`` (0-based, in stream order)."""
        return self.entries[self.files[number]]

    def sizes(self) -> list[int]:
        """Each file's size, in stream order."""
        return [self.entries[i].size for i in self.files]

    def encode(self) -> bytes:
        """The manifest's bytes (see the module's docstring)."""
        parts = [_HEAD.pack(MAGIC, len(self.entries))]
        for entry in self.entries:
            path = entry.path.encode("utf-8")
            parts.append(_ENTRY.pack(entry.kind.value.encode(), entry.mode, entry.mtime_ns,
                                     entry.size, len(path)))
            parts.append(path)
            if entry.kind is Kind.LINK:
                target = entry.target.encode("utf-8")
                parts.append(_LEN.pack(len(target)))
                parts.append(target)
        return b"".join(parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Manifest) and self.entries == other.entries

    def __hash__(self) -> int:
        return hash(self.entries)

    def __repr__(self) -> str:
        return f"Manifest({len(self.entries)} entries, {len(self.files)} files, {self.size} bytes)"


def decode(data: bytes, max_entries: int = 1 << 20) -> Manifest:
    """Read a manifest a peer sent.

    Raises:
        RemoteProtocolError: not a manifest, more than ``max_entries`` entries, or
            entries that do not form a safe tree.
    """
    view = memoryview(data)
    try:
        magic, count = _HEAD.unpack_from(view, 0)
    except struct.error:
        raise RemoteProtocolError("manifest too short") from None
    if magic != MAGIC:
        raise RemoteProtocolError("not a tree manifest")
    if count > max_entries:
        raise RemoteProtocolError(f"manifest of {count} entries, more than {max_entries}")
    pos, entries = _HEAD.size, []
    try:
        for _ in range(count):
            entry, pos = _entry_at(view, pos)
            entries.append(entry)
    except (struct.error, UnicodeDecodeError, ValueError) as err:
        raise RemoteProtocolError(f"malformed manifest entry {len(entries)}: {err}") from None
    if pos != len(view):
        raise RemoteProtocolError(f"{len(view) - pos} bytes after the manifest's entries")
    return Manifest(tuple(entries))


def _entry_at(view: memoryview, pos: int) -> tuple[Entry, int]:
    kind_byte, mode, mtime_ns, size, path_len = _ENTRY.unpack_from(view, pos)
    pos += _ENTRY.size
    kind = _BY_BYTE.get(kind_byte)
    if kind is None:
        raise ValueError(f"kind {kind_byte!r}")
    path = _text(view, pos, path_len)
    pos += path_len
    target = ""
    if kind is Kind.LINK:
        (target_len,) = _LEN.unpack_from(view, pos)
        pos += _LEN.size
        target = _text(view, pos, target_len)
        pos += target_len
    if size > _MAX_INT:
        raise ValueError(f"size {size}")
    return Entry(path, kind, mode, mtime_ns, size, target), pos


def _text(view: memoryview, pos: int, length: int) -> str:
    raw = bytes(view[pos:pos + length])
    if len(raw) != length:
        raise ValueError("truncated")
    return raw.decode("utf-8")


def problem(entries: tuple[Entry, ...]) -> Optional[str]:
    """Return why ``entries`` do not form a safe tree, or None if they do.

    The first is the root folder (path ``""``); every other path is safe
    (:func:`~zfs.protocol.tree.paths.path_problem`), comes after the previous one in the
    order of path parts (so each appears once), and lies in a folder listed before it;
    modes are permission bits; only files have a size, only links a target, and a link's
    target stays inside the tree (:func:`~zfs.protocol.tree.paths.link_problem`).
    """
    if not entries or entries[0].path != "" or entries[0].kind is not Kind.DIR:
        return "a manifest starts with its root folder"
    trouble = _entry_problem(entries[0], 0)
    if trouble is not None:
        return trouble
    folders = {""}
    previous: list[str] = []
    for entry in entries[1:]:
        trouble = _entry_problem(entry, 1)
        if trouble is not None:
            return trouble
        parts = entry.path.split("/")
        if parts <= previous:
            return f"entry {entry.path!r} out of order or repeated"[:300]
        previous = parts
        if parent_of(entry.path) not in folders:
            return f"entry {entry.path!r} is not in a folder of the tree"[:300]
        if entry.kind is Kind.DIR:
            folders.add(entry.path)
    return None


def _entry_problem(entry: Entry, number: int) -> Optional[str]:
    path, kind, mode, mtime_ns, size, target = entry
    if kind.__class__ is not Kind:
        return f"entry {number} has no kind"
    if number and (trouble := path_problem(path)) is not None:
        return trouble
    if mode.__class__ is not int or not 0 <= mode <= 0o7777:
        return f"entry {path!r} has mode {mode!r}"[:300]
    if mtime_ns.__class__ is not int or not -_MAX_INT <= mtime_ns <= _MAX_INT:
        return f"entry {path!r} has mtime {mtime_ns!r}"[:300]
    if size.__class__ is not int or size < 0 or (size and kind is not Kind.FILE):
        return f"entry {path!r} has size {size!r}"[:300]
    if kind is Kind.LINK:
        return link_problem(path, target)
    if target:
        return f"entry {path!r} is not a link but has a target"[:300]
    return None
