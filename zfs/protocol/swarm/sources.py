"""The owner's two quick choices when it hands out a chunk: which peer, which chunk.

Both are made for every chunk every recipient gets, so each costs a few steps, not a
scan of all recipients or all chunks:

- :class:`Sources` lists the peers that may take one more upload, in buckets by how
  many they have under way, so the least loaded are tried first; a peer is listed
  once, at its current load (an older entry goes stale and is dropped when reached).
- :func:`rarest` picks, among the chunks one source could give one recipient, the one
  with the fewest copies in the swarm, looking at a few candidates from a rotating
  start rather than at all of them (rarest first keeps every chunk spreading; the
  rotation keeps recipients from all chasing the same one).

Chunk sets are ints used as bit sets: bit ``i`` is chunk ``i``.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Generic, Hashable, Iterator, Optional, Sequence, TypeVar

T = TypeVar("T", bound=Hashable)


class Sources(Generic[T]):
    """Peers that can take one more upload, least loaded first.

    Args:
        slots: the most uploads a peer has under way at once.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._buckets: list[deque[tuple[T, int]]] = [deque() for _ in range(slots)]
        self._listed: dict[T, tuple[int, int]] = {}   # peer -> (its load, its entry)
        self._entries = 0

    def __len__(self) -> int:
        return len(self._listed)

    def update(self, peer: T, load: int, usable: bool) -> None:
        """Note ``peer``'s load; list it if it is ``usable`` and has a free slot."""
        if not usable or load >= self.slots:
            self._listed.pop(peer, None)
            return
        listed = self._listed.get(peer)
        if listed is not None and listed[0] == load:
            return
        self._entries += 1
        self._listed[peer] = (load, self._entries)
        bucket = self._buckets[load]
        bucket.append((peer, self._entries))
        if len(bucket) > 2 * len(self._listed) + 64:   # too many stale entries: sweep
            valid = [e for e in bucket if self._listed.get(e[0]) == (load, e[1])]
            bucket.clear()
            bucket.extend(valid)

    def drop(self, peer: T) -> None:
        """Never offer ``peer`` again (until it is updated as usable)."""
        self._listed.pop(peer, None)

    def candidates(self, limit: int) -> list[T]:
        """Return up to ``limit`` listed peers, least loaded first, rotating each bucket.

        A returned peer goes to the back of its bucket, so the next caller starts with
        another one.
        """
        out: list[T] = []
        listed = self._listed
        for load, bucket in enumerate(self._buckets):
            left = len(bucket)                       # look at each entry once at most
            while left and len(out) < limit:
                left -= 1
                entry = bucket.popleft()
                if listed.get(entry[0]) != (load, entry[1]):
                    continue                         # stale: the peer moved or left
                bucket.append(entry)
                out.append(entry[0])
            if len(out) >= limit:
                break
        return out


    def find(self, limit: int, accept: Callable[[T], bool]) -> Optional[T]:
        """Return the first of up to ``limit`` listed peers that ``accept`` takes, or None.

        Least loaded first; each peer looked at goes to the back of its bucket.
        """
        listed = self._listed
        for load, bucket in enumerate(self._buckets):
            left = len(bucket)
            while left and limit:
                left -= 1
                entry = bucket.popleft()
                if listed.get(entry[0]) != (load, entry[1]):
                    continue                         # stale: the peer moved or left
                bucket.append(entry)
                limit -= 1
                if accept(entry[0]):
                    return entry[0]
            if not limit:
                break
        return None


def rarest(chunks: int, total: int, start: int, copies: Sequence[int],
           looks: int = 4) -> int:
    """Return the chunk of the bit set ``chunks`` (not empty) with the fewest ``copies``.

    Looks at the first ``looks`` chunks of the set at or after ``start`` (wrapping
    around at ``total``), so the cost does not grow with the file.
    """
    start %= total
    rotated = (chunks >> start) | ((chunks << (total - start)) & ((1 << total) - 1))
    best, best_copies = -1, -1
    for _ in range(looks):
        if not rotated:
            break
        low = rotated & -rotated
        index = (low.bit_length() - 1 + start) % total
        if best < 0 or copies[index] < best_copies:
            best, best_copies = index, copies[index]
        rotated ^= low
    return best


def lowest(chunks: int) -> int:
    """Return the lowest chunk of the bit set ``chunks`` (not empty)."""
    return (chunks & -chunks).bit_length() - 1


def members(chunks: int) -> Iterator[int]:
    """Yield the chunks of the bit set ``chunks``, lowest first."""
    while chunks:
        low = chunks & -chunks
        yield low.bit_length() - 1
        chunks ^= low
