"""The virtual stream of a tree, what each side holds of it, and the pieces of a range.

A tree travels as ONE byte stream: its files' contents end to end, in manifest order,
so the chunk machinery of push and pull (1 MiB chunks, windows, acks, requests with
offsets and marks, the owner's budget) moves a tree unchanged, and a chunk carries many
small files at once. What a receiver already holds shortens it: a :class:`Layout` is
the stream of the ranges ``[start, size)`` of each file, and :meth:`Layout.pieces` says
which bytes of which files a range of it covers.

What a receiver holds it says in :class:`Offer` s (file, bytes held from its start,
their digest); the side that has the files checks them, and a plan is, per file, where
the stream starts (``start``: the least any receiver holds verified) and where this
receiver starts writing (``own``: what it holds verified). Both travel packed in
payload frames (:func:`pack_offers`, :func:`pack_plan`), per-file digests too
(:func:`pack_digests`); every ``unpack_*`` refuses a malformed peer's bytes with
:class:`~zfs.protocol.errors.RemoteProtocolError`.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from zfs.protocol.errors import RemoteProtocolError

#: A per-file digest is 32 lowercase hex characters (128 bits).
DIGEST_CHARS = 32
_HEX = frozenset("0123456789abcdef")
_OFFER = struct.Struct(f">IQ{DIGEST_CHARS}s")
_PLAN = struct.Struct(">IQQ")


class Piece(NamedTuple):
    """``length`` bytes of file ``file`` at ``offset`` in it, at ``at`` in the range read."""

    file: int
    offset: int
    length: int
    at: int


class Layout:
    """A stream made of the ranges ``[starts[i], sizes[i])`` of files 0, 1, ..., end to end.

    Args:
        sizes: each file's size, in stream order.
        starts: where each file's part begins (default: 0, the whole file).
    """

    __slots__ = ("sizes", "starts", "size", "_ends")

    def __init__(self, sizes: Sequence[int], starts: Sequence[int] | None = None) -> None:
        self.sizes = list(sizes)
        self.starts = list(starts) if starts is not None else [0] * len(self.sizes)
        if len(self.starts) != len(self.sizes) or any(
                not 0 <= s <= n for s, n in zip(self.starts, self.sizes)):
            raise ValueError("each start must lie within its file")
        ends, total = [], 0
        for start, size in zip(self.starts, self.sizes):
            total += size - start
            ends.append(total)
        self._ends = ends
        #: The stream's length.
        self.size = total

    def end_of(self, file: int) -> int:
        """Where file ``file``'s part ends in the stream."""
        return self._ends[file]

    def begin_of(self, file: int) -> int:
        """Where file ``file``'s part begins in the stream."""
        return self._ends[file - 1] if file else 0

    def files_done(self, offset: int) -> int:
        """How many files' parts lie wholly below ``offset`` (empty ones included)."""
        return bisect.bisect_right(self._ends, offset)

    def pieces(self, offset: int, length: int) -> list[Piece]:
        """The pieces of files that the stream's ``length`` bytes at ``offset`` hold."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"range {offset}+{length} outside a stream of {self.size}")
        out: list[Piece] = []
        file = bisect.bisect_right(self._ends, offset)
        at, end = 0, offset + length
        while offset < end:
            begin = self.begin_of(file)
            take = min(self._ends[file], end) - offset
            if take > 0:
                out.append(Piece(file, self.starts[file] + offset - begin, take, at))
                offset += take
                at += take
            file += 1
        return out


@dataclass(frozen=True, slots=True)
class Offer:
    """A receiver holds the first ``length`` bytes of file ``file``, of digest ``digest``."""

    file: int
    length: int
    digest: str


def plan_starts(sizes: Sequence[int], held: Iterable[Mapping[int, int]]) -> list[int]:
    """Where each file's part of the stream starts: the least any receiver holds verified.

    Args:
        sizes: each file's size.
        held: per receiver, file -> verified bytes held from its start.
    """
    held = list(held)
    return [min((h.get(f, 0) for h in held), default=0) for f in range(len(sizes))]


def pack_offers(offers: Iterable[Offer]) -> bytes:
    """The offers' bytes."""
    return b"".join(_OFFER.pack(o.file, o.length, o.digest.encode("ascii")) for o in offers)


def unpack_offers(data: bytes, sizes: Sequence[int]) -> list[Offer]:
    """Read a peer's offers for a tree of files of ``sizes``.

    Raises:
        RemoteProtocolError: malformed, a file offered twice, or more than it holds.
    """
    if len(data) % _OFFER.size:
        raise RemoteProtocolError("offers of a broken length")
    out, seen = [], set()
    for file, length, digest in _OFFER.iter_unpack(data):
        if file >= len(sizes) or file in seen or not 0 < length <= sizes[file]:
            raise RemoteProtocolError(f"offer of {length} bytes of file {file}")
        seen.add(file)
        out.append(Offer(file, length, _digest(digest)))
    return out


def pack_plan(starts: Sequence[int], own: Mapping[int, int]) -> bytes:
    """One receiver's plan: the stream's starts, and where it starts writing (``own``)."""
    return b"".join(_PLAN.pack(f, start, own.get(f, 0)) for f, start in enumerate(starts)
                    if start or own.get(f, 0))


def unpack_plan(data: bytes, sizes: Sequence[int]) -> tuple[list[int], dict[int, int]]:
    """Read a plan for a tree of files of ``sizes``: (starts, own).

    Raises:
        RemoteProtocolError: malformed, a file twice, or a start past what it holds.
    """
    if len(data) % _PLAN.size:
        raise RemoteProtocolError("a plan of a broken length")
    starts, own = [0] * len(sizes), {}
    last = -1
    for file, start, mine in _PLAN.iter_unpack(data):
        if not last < file < len(sizes) or not start <= mine <= sizes[file]:
            raise RemoteProtocolError(f"plan entry ({file}, {start}, {mine}) out of place")
        last = file
        starts[file] = start
        if mine:
            own[file] = mine
    return starts, own


def pack_digests(digests: Sequence[str]) -> bytes:
    """Per-file digests, end to end (``DIGEST_CHARS`` each)."""
    return "".join(digests).encode("ascii")


def unpack_digests(data: bytes, files: int) -> list[str]:
    """Read ``files`` per-file digests.

    Raises:
        RemoteProtocolError: the wrong length, or not hex digests.
    """
    if len(data) != files * DIGEST_CHARS:
        raise RemoteProtocolError(f"{len(data)} bytes of digests for {files} files")
    return [_digest(data[i:i + DIGEST_CHARS]) for i in range(0, len(data), DIGEST_CHARS)]


def _digest(raw: bytes) -> str:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise RemoteProtocolError("a digest that is not hex") from None
    if len(text) != DIGEST_CHARS or not _HEX.issuperset(text):
        raise RemoteProtocolError(f"not a digest: {text!r}"[:100])
    return text
