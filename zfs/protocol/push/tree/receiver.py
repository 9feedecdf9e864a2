"""The receiving side of a tree push: every inbound tree of one site.

Receiver lifecycle, per inbound tree (:class:`TreeReceiver`)::

    PREPARING --prepared: offer sent--> OFFERED --plan applied--> RECEIVING
        --end matches--> COMMITTING --committed--> gone (done sent)

    error, abort, inactivity, loss of the sender's site: gone; its staging folder is
    kept for a resume (Release), unless its bytes are wrong (Discard)

PREPARING: the shell opens the tree's staging folder (``DEST/.zfs-partial/tree-...``,
named by the sender's site and the tree's key, so the same push started again finds it),
links in the files of the tree already at the final place that may be kept, and digests
what it holds; the core sends a :class:`~zfs.protocol.wire.Checking` on every tick
meanwhile, so the sender waits for a long digest (and the sender does the same while it
digests what we offered). OFFERED: the sender's plan says where
the stream starts in each file and where we write from; a plan that claims we hold what
we never offered is a protocol error. RECEIVING: as a file's stream (in order, acked).

A tree is refused before anything is made when no registration takes its channel and
topic, its name is not a plain name, its manifest is malformed or unsafe, or it is over
the limits. A new open of the tree a live stream of the same sender builds ends that
stream first (its staging is kept): the sender started again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

from zfs.protocol.errors import Failure, LocalProtocolError, RemoteProtocolError
from zfs.protocol.names import name_problem
from zfs.protocol.push.tree.receiving import (
    TREE_STREAM_TRANSITIONS, ApplyPlan, CommitTree, Discard, Key, Opening, Prepare, Release,
    SendAck, SendChecking, SendDone, SendError, SendOffer, TreeReceiverCommand,
    TreeStreamState, WriteChunk)
from zfs.protocol.states import move
from zfs.protocol.tree.layout import Layout, Offer, unpack_plan
from zfs.protocol.tree.manifest import Manifest, decode


@dataclass(frozen=True, slots=True)
class TreeLimits:
    """What a registration accepts of a tree, and how long a silent one lives."""

    max_size: int = 1 << 40
    max_files: int = 1 << 20
    max_manifest_size: int = 48 << 20
    max_chunk_size: int = 64 << 20
    inactivity_timeout: float = 60.0


@dataclass(slots=True)
class _Tree:
    state: TreeStreamState
    resume: tuple[str, str]               # (sender site, tree key): its staging folder
    manifest: Manifest
    opening: Opening
    limits: TreeLimits
    active_at: float
    offers: dict[int, int] = field(default_factory=dict)   # file -> length offered
    size: int = -1                                           # the planned stream's
    received: int = 0
    acked: int = 0


class TreeReceiver:
    """Every inbound tree of one site, keyed by (sender address, stream id).

    Args:
        max_streams: trees open at once; more are refused.
        max_streams_per_site: trees open at once from one sending site.
    """

    def __init__(self, max_streams: int = 64, max_streams_per_site: int = 16) -> None:
        self.max_streams = max_streams
        self.max_streams_per_site = max_streams_per_site
        self._registrations: dict[tuple[str, str], TreeLimits] = {}
        self._trees: dict[Key, _Tree] = {}

    @property
    def streams(self) -> tuple[Key, ...]:
        """The keys of the trees in progress."""
        return tuple(self._trees)

    def resume_of(self, key: Key) -> tuple[str, str]:
        """The (sender site, tree key) naming the staging folder of tree ``key``."""
        return self._trees[key].resume

    def registration_added(self, channel: str, topic: str, limits: TreeLimits) -> None:
        """Accept trees for (channel, topic) from now on, within ``limits``."""
        self._registrations[(channel, topic)] = limits

    def registration_removed(self, channel: str, topic: str) -> None:
        """Refuse new trees for (channel, topic); those in progress go on."""
        self._registrations.pop((channel, topic), None)

    def open_received(self, key: Key, opening: Opening, manifest: bytes,
                      now: float) -> list[TreeReceiverCommand]:
        """A sender opens a tree; ``manifest`` is the payload's bytes."""
        if key in self._trees:
            return self._error(key, Failure.PROTOCOL, "tree opened twice")
        limits = self._registrations.get((opening.channel, opening.topic))
        problem = _open_problem(limits, opening, len(manifest))
        if problem is not None:
            return [SendError(key, Failure.REFUSED, problem)]
        assert limits is not None
        try:
            tree = decode(manifest, limits.max_files + 1)
        except RemoteProtocolError as err:
            return [SendError(key, Failure.REFUSED, f"bad manifest: {err}")]
        if len(tree.files) != opening.files or tree.size != opening.size:
            return [SendError(key, Failure.REFUSED, "the manifest does not match the open")]
        site = key[0].partition("/")[0]
        resume = (site, opening.key)
        out: list[TreeReceiverCommand] = []
        for other, live in list(self._trees.items()):
            if live.resume == resume:            # the sender started again: it ends
                del self._trees[other]
                out += [SendError(other, Failure.ABORTED, "the same tree was opened again"),
                        Release(other, "the same tree was opened again")]
        crowding = self._crowding_problem(site)
        if crowding is not None:
            return out + [SendError(key, Failure.REFUSED, crowding)]
        self._trees[key] = _Tree(TreeStreamState.PREPARING, resume, tree, opening, limits, now)
        return out + [Prepare(key, tree, opening)]

    def prepared(self, key: Key, offers: Sequence[Offer], now: float) -> list[TreeReceiverCommand]:
        """The staging folder is ready and we hold what ``offers`` say."""
        tree = self._expect(key, TreeStreamState.PREPARING)
        self._move(tree, TreeStreamState.OFFERED)
        tree.offers = {o.file: o.length for o in offers}
        tree.active_at = now
        return [SendOffer(key, tuple(offers))]

    def checking_received(self, key: Key, now: float) -> list[TreeReceiverCommand]:
        """The sender is still digesting what we offered: we wait for its plan."""
        tree = self._trees.get(key)
        if tree is not None and tree.state is TreeStreamState.OFFERED:
            tree.active_at = now
        return []

    def plan_received(self, key: Key, size: int, plan: bytes,
                      now: float) -> list[TreeReceiverCommand]:
        """The sender's plan: the stream's size, where its files start and we write from."""
        tree = self._trees.get(key)
        if tree is None:
            return [SendError(key, Failure.PROTOCOL, "unknown tree")]
        if tree.state is not TreeStreamState.OFFERED:
            return self._error(key, Failure.PROTOCOL, f"plan while {tree.state.value}")
        sizes = tree.manifest.sizes()
        try:
            starts, own = unpack_plan(plan, sizes)
        except RemoteProtocolError as err:
            return self._error(key, Failure.PROTOCOL, f"bad plan: {err}")
        for file, start in enumerate(starts):
            mine = own.get(file, 0)
            if (mine and tree.offers.get(file) != mine) or start > mine:
                return self._error(key, Failure.PROTOCOL,
                                   f"the plan says we hold {mine} bytes of file {file}")
        layout = Layout(sizes, starts)
        if layout.size != size:
            return self._error(key, Failure.PROTOCOL, f"plan of {layout.size} bytes, not {size}")
        tree.size = size
        tree.active_at = now
        return [ApplyPlan(key, layout, own)]

    def plan_applied(self, key: Key, now: float) -> list[TreeReceiverCommand]:
        """The folders, links and kept files are in place: bytes may come."""
        tree = self._expect(key, TreeStreamState.OFFERED)
        self._move(tree, TreeStreamState.RECEIVING)
        tree.active_at = now
        return []

    def io_failed(self, key: Key, reason: str, now: float,
                  discard: bool = False) -> list[TreeReceiverCommand]:
        """The shell could not prepare, write or commit: the tree fails, its staging
        kept for a resume (unless ``discard``: no room for it, say)."""
        if self._trees.pop(key, None) is None:
            return []
        end = Discard(key, reason) if discard else Release(key, reason)
        return [SendError(key, Failure.IO, reason), end]

    def refused_here(self, key: Key, reason: str, now: float) -> list[TreeReceiverCommand]:
        """The shell refuses the tree (its name exists and no_clobber, say)."""
        if self._trees.pop(key, None) is None:
            return []
        return [SendError(key, Failure.REFUSED, reason), Release(key, reason)]

    def chunk_received(self, key: Key, offset: object, length: int,
                       now: float) -> list[TreeReceiverCommand]:
        """A chunk of ``length`` bytes for ``offset`` arrived."""
        tree = self._trees.get(key)
        if tree is None:
            return [SendError(key, Failure.PROTOCOL, "unknown tree")]
        problem = _chunk_problem(tree, offset, length)
        if problem is not None:
            return self._error(key, Failure.PROTOCOL, problem)
        tree.active_at = now
        return [WriteChunk(key, tree.received)]

    def chunk_written(self, key: Key, offset: int, length: int,
                      now: float) -> list[TreeReceiverCommand]:
        """The shell wrote the chunk WriteChunk named."""
        tree = self._expect(key, TreeStreamState.RECEIVING)
        if offset != tree.received:
            raise LocalProtocolError(f"chunk_written({offset}), expected {tree.received}")
        tree.received += length
        tree.active_at = now
        # One ack per half window (as for a file): the sender still has chunks to send
        # when it comes, and half the acks cross two threads and two mailboxes less.
        every = tree.opening.window_chunks // 2 if tree.opening.window_chunks >= 4 else 1
        if tree.received - tree.acked < every * tree.opening.chunk_size \
                and tree.received != tree.size:
            return []
        tree.acked = tree.received
        return [SendAck(key, tree.received)]

    def end_received(self, key: Key, size: object, digest: object,
                     now: float) -> list[TreeReceiverCommand]:
        """The sender says the stream ended at ``size`` with ``digest``."""
        tree = self._trees.get(key)
        if tree is None:
            return [SendError(key, Failure.PROTOCOL, "unknown tree")]
        if tree.state is not TreeStreamState.RECEIVING:
            return self._error(key, Failure.PROTOCOL, f"end while {tree.state.value}")
        if not isinstance(digest, str) or size != tree.received or size != tree.size:
            return self._error(key, Failure.INTEGRITY, f"ended at {size!r} bytes, "
                               f"{tree.received} received of {tree.size}", discard=True)
        self._move(tree, TreeStreamState.COMMITTING)
        tree.active_at = now
        return [CommitTree(key, digest)]

    def committed(self, key: Key, now: float) -> list[TreeReceiverCommand]:
        """The tree is checked and in place."""
        self._expect(key, TreeStreamState.COMMITTING)
        del self._trees[key]
        return [SendDone(key)]

    def commit_failed(self, key: Key, reason: str, now: float) -> list[TreeReceiverCommand]:
        """The stream's digest did not match: its bytes are wrong."""
        self._expect(key, TreeStreamState.COMMITTING)
        return self._error(key, Failure.INTEGRITY, reason, discard=True)

    def protocol_broken(self, key: Key, reason: str, now: float) -> list[TreeReceiverCommand]:
        """The sender sent a malformed message for this tree: it ends here."""
        if key not in self._trees:
            return []
        return self._error(key, Failure.PROTOCOL, reason)

    def abort_received(self, key: Key, reason: str, now: float) -> list[TreeReceiverCommand]:
        """The sender aborted the tree (another target failed, or it gave up)."""
        if self._trees.pop(key, None) is None:
            return []
        return [Release(key, f"aborted by sender: {reason}")]

    def site_lost(self, site: str, now: float) -> list[TreeReceiverCommand]:
        """The runtime reports a site down: its trees can never finish."""
        out: list[TreeReceiverCommand] = []
        for key in [k for k in self._trees if k[0].partition("/")[0] == site]:
            del self._trees[key]
            out.append(Release(key, f"sender site {site} lost"))
        return out

    def time_passed(self, now: float) -> list[TreeReceiverCommand]:
        """Keep a sender waiting for our digests informed; expire silent trees."""
        out: list[TreeReceiverCommand] = []
        for key, tree in list(self._trees.items()):
            if tree.state is TreeStreamState.PREPARING:
                out.append(SendChecking(key))
            elif now - tree.active_at > tree.limits.inactivity_timeout:
                out += self._error(key, Failure.TIMEOUT,
                                   f"no activity for {now - tree.active_at:.1f} s")
        return out

    def _crowding_problem(self, site: str) -> Optional[str]:
        if len(self._trees) >= self.max_streams:
            return f"too many trees ({self.max_streams})"
        from_site = sum(1 for k in self._trees if k[0].partition("/")[0] == site)
        if from_site >= self.max_streams_per_site:
            return f"too many trees from site {site} ({self.max_streams_per_site})"
        return None

    def _error(self, key: Key, failure: Failure, reason: str,
               discard: bool = False) -> list[TreeReceiverCommand]:
        self._trees.pop(key, None)
        end = Discard(key, reason) if discard else Release(key, reason)
        return [SendError(key, failure, reason), end]

    def _expect(self, key: Key, state: TreeStreamState) -> _Tree:
        tree = self._trees.get(key)
        if tree is None or tree.state is not state:
            raise LocalProtocolError(f"tree {key!r} is not {state.value}")
        return tree

    @staticmethod
    def _move(tree: _Tree, new: TreeStreamState) -> None:
        tree.state = move(TREE_STREAM_TRANSITIONS, tree.state, new, "tree stream")


def _open_problem(limits: Optional[TreeLimits], opening: Opening,
                  manifest_size: int) -> Optional[str]:
    """Why an open must be refused before its manifest is read, or None."""
    if limits is None:
        return "no receiver registered for this channel/topic"
    problem = name_problem(opening.name) or name_problem(opening.key)
    if problem is not None:
        return problem
    if opening.size > limits.max_size:
        return f"tree of {opening.size} bytes is over the limit of {limits.max_size}"
    if opening.files > limits.max_files:
        return f"tree of {opening.files} files is over the limit of {limits.max_files}"
    if manifest_size > limits.max_manifest_size:
        return f"manifest of {manifest_size} bytes is over the limit of {limits.max_manifest_size}"
    if not 0 < opening.chunk_size <= limits.max_chunk_size:
        return f"chunk size {opening.chunk_size} is not within 1..{limits.max_chunk_size}"
    return None


def _chunk_problem(tree: _Tree, offset: object, length: int) -> Optional[str]:
    if tree.state is not TreeStreamState.RECEIVING:
        return f"chunk while {tree.state.value}"
    if offset != tree.received:
        return f"chunk at {offset!r}, expected {tree.received}"
    if not 0 < length <= tree.opening.chunk_size:
        return f"chunk of {length} bytes (chunk size {tree.opening.chunk_size})"
    if tree.received + length > tree.size:
        return f"data past the planned size {tree.size}"
    return None
