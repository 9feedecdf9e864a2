"""The sending side of a tree push: offers, a plan per target, then one file's stream.

Tree sender lifecycle (:class:`TreeSender`)::

    OFFERING --every target offered--> CHECKING --our digests known--> STREAMING --> DONE
       \\__________________________________\\_______________________________\\___> FAILED
            (a refusal, error, loss, timeout, or our own side failing)

OFFERING: every target got the manifest and answers with what it already holds
(:class:`~zfs.protocol.tree.layout.Offer` s: a file's first bytes and their digest,
from the tree already at the final place or from an earlier, interrupted push).
CHECKING: the shell digests the same ranges of our files; an offer whose digest matches
is held, verified. The plan: each file's part of the stream starts at the least any
target holds (so what one target lacks reaches all, and those that hold it discard it),
and each target learns where it starts writing. STREAMING: the planned stream, which is
shorter by what every target holds, moves exactly as one file's stream does, by the push
sender core (:class:`~zfs.protocol.push.sender.PushSender`), whose commands pass through.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional, Union

from zfs.protocol.errors import Failure, LocalProtocolError
from zfs.protocol.push import sender as stream
from zfs.protocol.states import Transitions, move
from zfs.protocol.tree.layout import Layout, Offer, plan_starts


class TreeState(enum.Enum):
    """Where a tree send is in its lifecycle."""

    OFFERING = "offering"
    CHECKING = "checking"
    STREAMING = "streaming"
    DONE = "done"
    FAILED = "failed"


TREE_TRANSITIONS: Transitions[TreeState] = {
    TreeState.OFFERING: frozenset({TreeState.CHECKING, TreeState.FAILED}),
    TreeState.CHECKING: frozenset({TreeState.STREAMING, TreeState.FAILED}),
    TreeState.STREAMING: frozenset({TreeState.DONE, TreeState.FAILED}),
    TreeState.DONE: frozenset(),
    TreeState.FAILED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class SendTreeOpen:
    """Send every target the tree's open with its manifest."""

    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CheckOffers:
    """Digest the first ``length`` bytes of each (file, length), then call ``offers_checked``."""

    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class SendChecking:
    """Tell the targets we are still digesting what they offered (they wait for the plan)."""

    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Planned:
    """The stream is planned: each file's part starts at ``starts[file]`` (read from there)."""

    starts: tuple[int, ...]
    held: Mapping[str, Mapping[int, int]]


@dataclass(frozen=True, slots=True)
class SendPlan:
    """Tell ``target`` the stream's ``size`` and its plan (``own``: where it writes from)."""

    target: str
    size: int
    starts: tuple[int, ...]
    own: Mapping[int, int]


TreeCommand = Union[SendTreeOpen, CheckOffers, SendChecking, Planned, SendPlan,
                    stream.SenderCommand]


class TreeSender:
    """The sending side of one tree push, to one or more targets.

    Args:
        targets: the target site names (distinct, at least one).
        sizes: each file's size, in manifest order.
        chunk_size, window_chunks, chunk_timeout: as for :class:`PushSender`.
    """

    def __init__(self, targets: Sequence[str], sizes: Sequence[int], *, chunk_size: int,
                 window_chunks: int, chunk_timeout: float) -> None:
        if not targets or len(set(targets)) != len(targets):
            raise LocalProtocolError("targets must be distinct and at least one")
        if chunk_size < 1 or window_chunks < 1 or chunk_timeout <= 0:
            raise LocalProtocolError("chunk_size, window_chunks and chunk_timeout must be positive")
        self.targets = tuple(targets)
        self.sizes = tuple(sizes)
        self.chunk_size, self.window_chunks = chunk_size, window_chunks
        self.chunk_timeout = chunk_timeout
        self.state = TreeState.OFFERING
        #: The stream once planned (None before).
        self.stream: Optional[stream.PushSender] = None
        self.layout: Optional[Layout] = None
        self._offers: dict[str, list[Offer]] = {}
        self._active_at: dict[str, float] = {}
        self._started = False

    @property
    def finished(self) -> bool:
        """True once the send is DONE or FAILED."""
        return self.state in (TreeState.DONE, TreeState.FAILED)

    def start(self, now: float) -> list[TreeCommand]:
        """Begin: open the tree at every target."""
        if self._started:
            raise LocalProtocolError("start() called twice")
        self._started = True
        self._active_at = {t: now for t in self.targets}
        return [SendTreeOpen(self.targets)]

    # -- events from targets

    def offer_received(self, target: str, offers: Sequence[Offer],
                       now: float) -> list[TreeCommand]:
        """A target opened the tree and says what it holds (offers already checked)."""
        if self.finished or target not in self._active_at or target in self._offers:
            return []
        if self.state is not TreeState.OFFERING:
            return self._fail(target, Failure.PROTOCOL, "offer after the plan")
        self._offers[target] = list(offers)
        self._active_at[target] = now
        if len(self._offers) < len(self.targets):
            return []
        self._move(TreeState.CHECKING)
        wanted = sorted({(o.file, o.length) for offers in self._offers.values() for o in offers})
        if wanted:
            return [CheckOffers(tuple(wanted))]
        return self.offers_checked({}, now)

    def checking_received(self, target: str, now: float) -> list[TreeCommand]:
        """A target is still digesting what it holds."""
        if self.state is TreeState.OFFERING and target in self._active_at:
            self._active_at[target] = now
        return []

    def failure_received(self, target: str, failure: Failure, reason: str,
                         now: float) -> list[TreeCommand]:
        """A target reported that its side failed (or refused the tree)."""
        if self.stream is not None:
            return self._after(self.stream.failure_received(target, failure, reason, now))
        if self.finished or target not in self._active_at:
            return []
        return self._fail(target, failure, reason)

    def target_lost(self, target: str, reason: str, now: float) -> list[TreeCommand]:
        """The runtime reports a target site down."""
        if self.stream is not None:
            return self._after(self.stream.target_lost(target, reason, now))
        if self.finished or target not in self._active_at:
            return []
        return self._fail(target, Failure.LOST, reason or "site lost")

    def ack_received(self, target: str, received: object, now: float) -> list[TreeCommand]:
        """A target has written ``received`` bytes of the stream (cumulative)."""
        if self.stream is None:
            return [] if self.finished else self._fail(target, Failure.PROTOCOL,
                                                       "ack before the plan")
        return self._after(self.stream.ack_received(target, received, now))

    def done_received(self, target: str, now: float) -> list[TreeCommand]:
        """A target committed the tree."""
        if self.stream is None:
            return [] if self.finished else self._fail(target, Failure.PROTOCOL,
                                                       "done before the plan")
        return self._after(self.stream.done_received(target, now))

    # -- events from our own side

    def offers_checked(self, digests: Mapping[tuple[int, int], str],
                       now: float) -> list[TreeCommand]:
        """Our digests of the ranges CheckOffers named: plan, and start the stream."""
        if self.state is not TreeState.CHECKING:
            return []
        held = {target: {o.file: o.length for o in offers
                         if digests.get((o.file, o.length)) == o.digest}
                for target, offers in self._offers.items()}
        starts = tuple(plan_starts(self.sizes, held.values()))
        self.layout = Layout(self.sizes, starts)
        self.stream = stream.PushSender(self.targets, chunk_size=self.chunk_size,
                                        window_chunks=self.window_chunks,
                                        chunk_timeout=self.chunk_timeout,
                                        size=self.layout.size)
        self._move(TreeState.STREAMING)
        out: list[TreeCommand] = [Planned(starts, held)]
        out += [SendPlan(t, self.layout.size, starts, held[t]) for t in self.targets]
        self.stream.start(now)               # its SendOpen is the plans just sent
        for target in self.targets:
            out += self._after(self.stream.accepted(target, now))
        return out

    def chunk_read(self, offset: int, length: int, now: float) -> list[TreeCommand]:
        """The shell read the chunk a ReadChunk named."""
        if self.stream is None:
            raise LocalProtocolError("chunk_read before the plan")
        return self._after(self.stream.chunk_read(offset, length, now))

    def source_failed(self, reason: str, now: float,
                      failure: Failure = Failure.LOCAL) -> list[TreeCommand]:
        """Our own side failed (a file unreadable or changed, our caller aborted)."""
        if self.stream is not None:
            return self._after(self.stream.source_failed(reason, now, failure))
        if self.finished:
            return []
        return self._fail(None, failure, reason)

    def time_passed(self, now: float) -> list[TreeCommand]:
        """Fail the send if a target owes its offer for longer than chunk_timeout; while
        we digest, tell the targets so."""
        if self.stream is not None:
            return self._after(self.stream.time_passed(now))
        if self.state is TreeState.CHECKING:
            return [SendChecking(self.targets)]
        if self.state is not TreeState.OFFERING or not self._started:
            return []
        for target in self.targets:
            if target not in self._offers and \
                    now - self._active_at[target] > self.chunk_timeout:
                return self._fail(target, Failure.TIMEOUT,
                                  f"no answer within {self.chunk_timeout:g} s")
        return []

    # -- internals

    def _after(self, cmds: list[stream.SenderCommand]) -> list[TreeCommand]:
        """Pass the stream's commands on, following its end."""
        assert self.stream is not None
        if not self.finished and self.stream.finished:
            ok = self.stream.state is stream.SenderState.DONE
            self._move(TreeState.DONE if ok else TreeState.FAILED)
        return list(cmds)

    def _fail(self, culprit: Optional[str], failure: Failure,
              reason: str) -> list[TreeCommand]:
        self._move(TreeState.FAILED)
        others = tuple(t for t in self.targets if not (t == culprit and failure is Failure.LOST))
        out: list[TreeCommand] = []
        if others:
            out.append(stream.SendAbort(others, f"{culprit or 'sender'}: {reason}"))
        out.append(stream.Finished(False, culprit, failure, reason))
        return out

    def _move(self, new: TreeState) -> None:
        self.state = move(TREE_TRANSITIONS, self.state, new, "tree sender")
