"""Where each chunk of a swarm push travels: a plan of stripes, each a tree of the targets.

Why not one chain or one tree. With every host's link the same rate ``r``, a chain
carries the file at ``r`` but a chunk needs one hop per target to reach the last one,
so a file of ``C`` chunks takes ``(C + N) / C`` times the bound ``size / r``: fine at 8
targets, hopeless at 10,000. One tree of fan-out ``k`` is only ``log_k N`` hops deep,
but each inner node sends every chunk ``k`` times, so the file takes ``k`` times the
bound, and its leaves (most of the hosts) never upload at all.

So the file is cut into ``stripes`` (chunk ``i`` belongs to stripe ``i % stripes``) and
each stripe travels down its own tree of all the targets, ``fanout`` children per inner
node (the SplitStream arrangement). With ``stripes == fanout`` a host is an inner node
in about one tree only and a leaf in the others: it uploads its one stripe to
``fanout`` children, about one copy of the file in all, and downloads each stripe once.
Every link then carries the file about once each way, the sender's too, and a chunk is
``log_fanout N`` hops from the sender. ``stripes = fanout = 1`` is the chain.

A tree is complete (levels filled left to right) and written as its members in
preorder; its shape follows from the length alone (:func:`split`), so an ``Open``
carries a receiver's subtree as a plain list of names and each receiver works out its
own children (:func:`children`). A complete tree has as few inner nodes as can be,
each with ``fanout`` children, so the inner slots of all the trees fit on the targets
one each; which target takes which is chosen to balance uploads (:func:`plan`)::

    members  [a, b, c, d, e, f, g, h]    fanout 2: a's children head the parts of the rest
    split    a | [b, c, d, e] | [f, g, h]
    tree     a -> b -> c -> d
                    -> e
               -> f -> (g, h)
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Optional, Sequence

from zfs.protocol.errors import LocalProtocolError


@dataclass(frozen=True, slots=True)
class Plan:
    """The trees of one swarm push: ``trees[j]`` is stripe ``j``'s members in preorder."""

    fanout: int
    trees: tuple[tuple[str, ...], ...]

    @property
    def stripes(self) -> int:
        """How many stripes (and trees) the file is cut into."""
        return len(self.trees)

    @property
    def roots(self) -> tuple[str, ...]:
        """The first hop of each stripe: the sender's only direct targets."""
        return tuple(tree[0] for tree in self.trees)

    @property
    def depth(self) -> int:
        """Hops from the sender to the deepest target (the pipeline's length)."""
        return depth(len(self.trees[0]), self.fanout)

    def uploads(self) -> dict[str, int]:
        """How many children each target sends to, over all stripes (its upload in stripes)."""
        load = {name: 0 for name in self.trees[0]}
        for tree in self.trees:
            for head, count in zip(tree, shape(len(tree), self.fanout)):
                load[head] += count
        return load


def split(count: int, fanout: int) -> list[int]:
    """Return the sizes of the child subtrees of a node with ``count`` descendants.

    The tree is complete (levels filled left to right), so every inner node but at
    most one has ``fanout`` children: a tree of ``n`` has about ``n / fanout`` inner
    nodes, and ``fanout`` trees fit on ``n`` targets with each inner in one tree only.
    """
    if fanout < 1 or count < 0:
        raise LocalProtocolError(f"cannot split {count} members {fanout} ways")
    if fanout == 1 or count == 0:
        return [count] if count else []
    size = count + 1
    levels, full = 1, 1                       # full: nodes of a perfect tree of `levels`
    while full < size:
        levels, full = levels + 1, full * fanout + 1
    above = (full - 1) // fanout              # nodes above the last level
    last = size - above                       # nodes on the last level
    width = fanout ** (levels - 2)            # last-level nodes under one child
    inner = (above - 1) // fanout             # a child's nodes above the last level
    parts = [inner + min(width, max(0, last - i * width)) for i in range(fanout)]
    return [p for p in parts if p]


def children(members: Sequence[str], fanout: int) -> list[tuple[str, ...]]:
    """Return the subtrees of ``members[0]``'s children, each in preorder (child first)."""
    parts: list[tuple[str, ...]] = []
    start = 1
    for size in split(len(members) - 1, fanout):
        parts.append(tuple(members[start:start + size]))
        start += size
    return parts


def shape(count: int, fanout: int) -> list[int]:
    """Return the number of children at each preorder position of a tree of ``count``."""
    out: list[int] = []
    stack = [count]
    while stack:
        size = stack.pop()
        parts = split(size - 1, fanout)
        out.append(len(parts))
        stack.extend(reversed(parts))
    return out


def depth(count: int, fanout: int) -> int:
    """Return the hops from the sender to the deepest member of a tree of ``count``."""
    hops = 0
    while count > 0:
        hops += 1
        count = split(count - 1, fanout)[0] if count > 1 else 0
    return hops


def default_fanout(targets: int) -> int:
    """Return the fan-out to use for ``targets`` targets when the caller names none.

    A chain while it is short (its last target is ``targets`` chunks behind the first,
    few next to a file's chunks), two stripes over binary trees past that: in
    ``benchmarks/swarmsim.py`` with every link the same rate, a chain wins at 8
    targets, ties at 16, and fan-out 2 beats 3 and 4 from 16 to 10,000.
    """
    return 1 if targets <= 8 else 2


def plan(targets: Sequence[str], fanout: int = 0, stripes: int = 0) -> Plan:
    """Plan a swarm push: ``stripes`` trees (default: ``fanout``) over every target.

    ``fanout`` 0 means :func:`default_fanout`.

    Inner positions go to targets biggest slot first, each to the target that uploads
    least so far and is not inner in that tree yet; with ``stripes == fanout`` every
    target is then inner in one tree at most (a few in two, in plans of a handful of
    targets). Leaves keep the caller's order, which may keep near hosts together.

    Raises:
        LocalProtocolError: no targets, duplicates, or a fan-out or stripe count below 1.
    """
    fanout = fanout or default_fanout(len(targets))
    stripes = stripes or fanout
    if not targets or len(set(targets)) != len(targets):
        raise LocalProtocolError("targets must be distinct and at least one")
    if fanout < 1 or stripes < 1:
        raise LocalProtocolError(f"fanout and stripes must be >= 1, not {fanout}, {stripes}")
    counts = shape(len(targets), fanout)
    inner = [p for p, c in enumerate(counts) if c]
    # Biggest slots first, over all the trees, each to the least loaded target that is
    # not inner in that tree yet (longest processing time first, as in scheduling).
    order = sorted(((counts[p], j, p) for j in range(stripes) for p in inner),
                   key=lambda slot: -slot[0])
    load = [(0, i, name) for i, name in enumerate(targets)]    # (children, tie, name)
    slots: list[list[Optional[str]]] = [[None] * len(targets) for _ in range(stripes)]
    taken: list[set[str]] = [set() for _ in range(stripes)]
    for size, stripe, position in order:
        skipped = []
        while True:
            used, tie, name = heapq.heappop(load)
            if name not in taken[stripe]:
                break
            skipped.append((used, tie, name))
        slots[stripe][position] = name
        taken[stripe].add(name)
        for entry in [*skipped, (used + size, tie, name)]:
            heapq.heappush(load, entry)
    trees = []
    for tree in slots:
        chosen = set(tree)
        leaves = iter([name for name in targets if name not in chosen])
        trees.append(tuple(slot if slot is not None else next(leaves) for slot in tree))
    return Plan(fanout, tuple(trees))
