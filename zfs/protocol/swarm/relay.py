"""One target's part in a swarm push: its own file, plus passing chunks down its subtrees.

A :class:`Relay` is one inbound stream at one target. The stream arrives in stripes
(see :mod:`zfs.protocol.swarm.plan`), each from that stripe's parent, in order within
the stripe; the relay writes every chunk and passes each one on to its children in
that stripe as it arrives, before its own write. It answers its parents for its whole
subtree: it acks the minimum of what it wrote and what its children acked, and says
done once it and its children committed. Any failure below, at this target or on a
link to a neighbour goes up to the sender, naming the culprit, and an abort goes down;
the sender then aborts every target.

Accepting is the exception: a relay accepts as soon as its own file exists, without
waiting for its subtree, so the sender starts after one round trip to the roots rather
than one down the deepest tree and back (depth x RTT, about 5% of the swarm bound at
10,000 targets). A child that refuses later fails the push as any failure does: the
data sent meanwhile is wasted, never wrongly kept. Each child's Open travels ahead of
its first chunk on the same link, so no chunk reaches a target that was not opened.

Relay lifecycle (the stripes' parts run side by side inside each state)::

    OPENING --file_created--> STREAMING --every chunk written, End known--> COMMITTING
                                                                              | committed
    DONE <--every child of every stripe sent Done, Done sent up-- COMMITTED <--+
    any state but DONE --refusal, error, timeout, abort, loss--> FAILED
                         (file discarded unless COMMITTED; Abort down; Failed up
                          unless the abort came from above)

Time: a child that owes us something (an accept, an ack, a done) and has said nothing
for ``chunk_timeout`` is the culprit. So that the silent target itself is named and not
each of its ancestors, a relay that owes its parent something repeats its last ack
every quarter of that timeout. A relay that expects data from above and hears nothing
for its registration's inactivity timeout gives up (EXPIRED).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Optional, Union

from zfs.protocol.errors import LocalProtocolError
from zfs.protocol.swarm import plan as layout
from zfs.protocol.swarm.opening import StreamLimits, open_problem, refusal
from zfs.protocol.swarm.stripe import Leg
from zfs.protocol.swarm.wire import (
    EXPIRED, INTEGRITY, IO, LOST, PROTOCOL, REFUSED, TIMEOUT, UNREACHABLE, Abort, Accept, Ack,
    Chunk, Done, End, Failed, Open, Send)


class RelayState(enum.Enum):
    """Where a target's side of one swarm push is."""

    OPENING = "opening"
    STREAMING = "streaming"
    COMMITTING = "committing"
    COMMITTED = "committed"
    DONE = "done"
    FAILED = "failed"


RELAY_TRANSITIONS: dict[RelayState, tuple[RelayState, ...]] = {
    RelayState.OPENING: (RelayState.STREAMING, RelayState.FAILED),
    RelayState.STREAMING: (RelayState.COMMITTING, RelayState.FAILED),
    RelayState.COMMITTING: (RelayState.COMMITTED, RelayState.FAILED),
    RelayState.COMMITTED: (RelayState.DONE, RelayState.FAILED),
    RelayState.DONE: (),
    RelayState.FAILED: (),
}


@dataclass(frozen=True, slots=True)
class CreateFile:
    """Create the partial file for ``name``, then call ``file_created`` (or ``io_failed``)."""

    name: str


@dataclass(frozen=True, slots=True)
class WriteChunk:
    """Write chunk ``index`` (``length`` bytes at ``offset``), then call ``chunk_written``."""

    index: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class CommitFile:
    """Check size and digest, rename into place; call ``committed`` or ``commit_failed``."""

    size: int
    digest: str


@dataclass(frozen=True, slots=True)
class Discard:
    """Delete the partial file (once created, if it is still being created)."""

    reason: str


RelayCommand = Union[Send, CreateFile, WriteChunk, CommitFile, Discard]


class Relay:
    """One target's side of one swarm push stream: write, forward, aggregate, fail.

    Args:
        me: this target's name, as the plan names it.
        limits: the registration that takes the stream's (channel, topic), or None.
    """

    def __init__(self, me: str, limits: Optional[StreamLimits]) -> None:
        self.me = me
        self.limits = limits
        self.state = RelayState.OPENING
        self.stream = ""
        self.digest: Optional[str] = None
        self._first: Optional[Open] = None
        self._stripes: dict[int, Leg] = {}
        self._heard_up = 0.0                     # our parents' last word

    @property
    def finished(self) -> bool:
        """True once the relay is DONE or FAILED: the shell may forget it."""
        return self.state in (RelayState.DONE, RelayState.FAILED)

    @property
    def parents(self) -> tuple[str, ...]:
        """Our parent in each stripe opened so far (without repeats)."""
        return tuple(dict.fromkeys(s.parent for s in self._stripes.values()))

    @property
    def children(self) -> tuple[str, ...]:
        """Our children in every stripe opened so far (without repeats)."""
        return tuple(dict.fromkeys(c for s in self._stripes.values() for c in s.children))

    # -- from upstream

    def open_received(self, sender: str, msg: Open, now: float) -> list[RelayCommand]:
        """A parent opened the stream for one stripe and sent our subtree of it."""
        if self.finished:
            return []
        problem = open_problem(self.me, sender, msg, self._first, self._stripes)
        if problem is not None:
            return self._fail(sender, PROTOCOL, problem, tell=(sender,))
        first = self._first is None
        if first:
            why = refusal(msg, self.limits)
            if why is not None:
                self._move(RelayState.FAILED)
                return [Send((sender,), Failed(msg.stream, self.me, REFUSED, why))]
            self._first, self.stream = msg, msg.stream
        subtrees = layout.children(msg.members, msg.fanout)
        st = self._stripes[msg.stripe] = Leg.opened(
            sender, tuple(t[0] for t in subtrees), self._stripe_chunks(msg.stripe), now)
        self._heard_up = now
        out: list[RelayCommand] = [CreateFile(msg.name)] if first else []
        for tree in subtrees:
            out.append(Send((tree[0],), replace(msg, members=tree)))
        if self.digest is not None and st.children:   # the End came by another stripe first
            out.append(Send(st.children, End(self.stream, msg.size, self.digest)))
        return out + self._maybe_accept(msg.stripe, now) + self._maybe_commit()

    def chunk_received(self, sender: str, index: object, length: int,
                       now: float) -> list[RelayCommand]:
        """Chunk ``index`` (``length`` bytes) arrived; pass it down, then write it."""
        if self.finished:
            return []
        problem = self._chunk_problem(sender, index, length)
        if problem is not None:
            return self._fail(sender, PROTOCOL, problem)
        assert isinstance(index, int) and self._first is not None
        st = self._stripes[index % self._first.stripes]
        self._heard_up = now
        st.start_clocks(now, self.digest is not None)
        st.received += 1
        out: list[RelayCommand] = []
        if st.children:
            out.append(Send(st.children, Chunk(self.stream, index)))
        out.append(WriteChunk(index, index * self._first.chunk_size, length))
        return out

    def end_received(self, sender: str, size: object, digest: object,
                     now: float) -> list[RelayCommand]:
        """A parent says the file ended at ``size`` with ``digest``."""
        if self.finished:
            return []
        if sender not in self.parents or self._first is None:
            return self._fail(sender, PROTOCOL, "end from a target that is not our parent")
        if size != self._first.size or not isinstance(digest, str):
            return self._fail(sender, INTEGRITY, f"end at {size!r} bytes, "
                              f"{self._first.size} declared")
        if self.digest is not None:
            if digest != self.digest:
                return self._fail(sender, INTEGRITY, "two different digests for one file")
            return []
        self._heard_up = now
        for st in self._stripes.values():
            st.start_clocks(now, True)
        self.digest = digest
        out: list[RelayCommand] = []
        if self.children:
            out.append(Send(self.children, End(self.stream, self._first.size, digest)))
        return out + self._maybe_commit()

    def abort_received(self, sender: str, reason: str, now: float) -> list[RelayCommand]:
        """A parent aborted the push: discard, and pass the abort down."""
        if self.finished or sender not in self.parents:
            return []
        return self._fail(sender, "", reason, tell=())

    # -- from downstream

    def accept_received(self, child: str, stripe: object, now: float) -> list[RelayCommand]:
        """A child and its subtree of ``stripe`` opened the stream."""
        st = self._from_child(child, stripe, now)
        if st is None:
            return []
        st.accepted.add(child)
        assert isinstance(stripe, int)
        return self._maybe_accept(stripe, now)

    def ack_received(self, child: str, stripe: object, count: object,
                     now: float) -> list[RelayCommand]:
        """A child's subtree holds the first ``count`` chunks of ``stripe``."""
        st = self._from_child(child, stripe, now)
        if st is None:
            return []
        if type(count) is not int or not 0 <= count <= st.received:
            return self._fail(child, PROTOCOL, f"ack of {count!r} chunks, {st.received} sent")
        if count <= st.acks[child]:
            return []                          # a keepalive, or a late repeat
        st.acks[child] = count
        assert isinstance(stripe, int)
        return self._maybe_ack(stripe, now)

    def done_received(self, child: str, stripe: object, now: float) -> list[RelayCommand]:
        """A child and its subtree of ``stripe`` committed the file."""
        st = self._from_child(child, stripe, now)
        if st is None:
            return []
        st.done.add(child)
        return self._maybe_done(now)

    def failed_received(self, child: str, culprit: object, kind: object, reason: object,
                        now: float) -> list[RelayCommand]:
        """Something failed in a child's subtree: pass it up and abort everything below."""
        if self.finished or child not in self.children:
            return []
        if not (isinstance(culprit, str) and isinstance(kind, str) and isinstance(reason, str)):
            return self._fail(child, PROTOCOL, "malformed failure report")
        return self._fail(culprit, kind, reason)

    def child_unreachable(self, child: str, reason: str, now: float) -> list[RelayCommand]:
        """The shell could not open a link to ``child``: the push cannot go this way."""
        if self.finished or child not in self.children:
            return []
        return self._fail(child, UNREACHABLE, reason)

    def site_lost(self, site: str, now: float) -> list[RelayCommand]:
        """The runtime reports a site down: if it is a neighbour, the push cannot finish."""
        if self.finished or (site not in self.parents and site not in self.children):
            return []
        return self._fail(site, LOST, "site lost")

    # -- from our own shell

    def file_created(self, now: float) -> list[RelayCommand]:
        """The partial file exists: accept every stripe whose children accepted."""
        if self.state is not RelayState.OPENING or self._first is None:
            raise LocalProtocolError(f"file_created while {self.state.value}")
        self._created = True
        self._move(RelayState.STREAMING)
        out: list[RelayCommand] = []
        for stripe in self._stripes:
            out += self._maybe_accept(stripe, now)
        return out

    def chunk_written(self, index: int, now: float) -> list[RelayCommand]:
        """The shell wrote chunk ``index`` (chunks of one stripe are written in order)."""
        if self.finished:
            return []
        assert self._first is not None
        st = self._stripes.get(index % self._first.stripes)
        if st is None or index != index % self._first.stripes + st.written * self._first.stripes \
                or st.written >= st.received:
            raise LocalProtocolError(f"chunk_written({index}) out of order")
        st.written += 1
        return self._maybe_ack(index % self._first.stripes, now) + self._maybe_commit()

    def io_failed(self, reason: str, now: float) -> list[RelayCommand]:
        """The shell could not create or write the partial file."""
        return self._fail(self.me, IO, reason)

    def committed(self, now: float) -> list[RelayCommand]:
        """The checked file is in place (it stays, even if the push failed meanwhile)."""
        if self.state is RelayState.FAILED:
            return []
        self._move(RelayState.COMMITTED)
        return self._maybe_done(now)

    def commit_failed(self, reason: str, now: float) -> list[RelayCommand]:
        """Size or digest did not match (the shell deleted the file)."""
        return self._fail(self.me, INTEGRITY, reason)

    def time_passed(self, now: float) -> list[RelayCommand]:
        """Time out a silent child or a silent upstream; keep our own parents informed."""
        if self.finished or self._first is None:
            return []
        timeout, ending = self._first.chunk_timeout, self.digest is not None
        for st in self._stripes.values():
            child = st.late(now, timeout, ending)
            if child is not None:
                return self._fail(child, TIMEOUT, f"no answer within {timeout:g} s")
        finishing = self._all_received()
        limit = self.limits.inactivity_timeout if self.limits else timeout
        if not finishing and now - self._heard_up > limit:
            return self._fail(self.me, EXPIRED, f"nothing from upstream for {limit:g} s")
        out: list[RelayCommand] = []
        for stripe, st in self._stripes.items():
            if st.owes_up(finishing) and now - st.sent_up_at >= timeout / 4:
                st.sent_up_at = now
                out.append(Send((st.parent,), Ack(self.stream, stripe, st.acked_up)))
        return out

    # -- internals

    def _stripe_chunks(self, stripe: int) -> int:
        first = self._first
        assert first is not None
        return len(range(stripe, -(-first.size // first.chunk_size), first.stripes))

    def _all_received(self) -> bool:
        """True once the End is known and every chunk of every stripe has arrived."""
        first = self._first
        return self.digest is not None and first is not None \
            and len(self._stripes) == first.stripes \
            and all(st.complete for st in self._stripes.values())

    def _from_child(self, child: str, stripe: object, now: float) -> Optional[Leg]:
        st = self._stripes.get(stripe) if type(stripe) is int else None
        if self.finished or st is None or child not in st.children:
            return None
        st.heard[child] = now
        return st

    def _maybe_accept(self, stripe: int, now: float) -> list[RelayCommand]:
        st = self._stripes[stripe]
        if self.state is RelayState.OPENING or st.accept_sent:
            return []
        st.accept_sent, st.sent_up_at = True, now
        return [Send((st.parent,), Accept(self.stream, stripe))]

    def _maybe_ack(self, stripe: int, now: float) -> list[RelayCommand]:
        st = self._stripes[stripe]
        count = st.ack_count()
        if count <= st.acked_up:
            return []
        st.acked_up, st.sent_up_at = count, now
        return [Send((st.parent,), Ack(self.stream, stripe, count))]

    def _maybe_commit(self) -> list[RelayCommand]:
        if self.state is not RelayState.STREAMING or self.digest is None or self._first is None:
            return []
        if len(self._stripes) < self._first.stripes or any(
                st.written < st.chunks for st in self._stripes.values()):
            return []
        self._move(RelayState.COMMITTING)
        return [CommitFile(self._first.size, self.digest)]

    def _maybe_done(self, now: float) -> list[RelayCommand]:
        if self.state is not RelayState.COMMITTED:
            return []
        out: list[RelayCommand] = []
        for stripe, st in self._stripes.items():
            if not st.done_sent and len(st.done) == len(st.children):
                st.done_sent, st.sent_up_at = True, now
                out.append(Send((st.parent,), Done(self.stream, stripe)))
        if all(st.done_sent for st in self._stripes.values()):
            self._move(RelayState.DONE)
        return out

    def _fail(self, culprit: str, kind: str, reason: str,
              tell: Optional[tuple[str, ...]] = None) -> list[RelayCommand]:
        """Fail: discard our file, abort below, and tell ``tell`` (default: our parents).

        A lost neighbour is neither told nor aborted: it cannot hear us.
        """
        if self.finished:
            return []
        kept = self.state is RelayState.COMMITTED
        self._move(RelayState.FAILED)
        text = f"{culprit}: {reason}" if kind else reason     # an abort passes on as it came
        out: list[RelayCommand] = []
        if self._first is not None and not kept:
            out.append(Discard(text))
        skip = culprit if kind == LOST else None
        below = tuple(c for c in self.children if c != skip)
        if below:
            out.append(Send(below, Abort(self.stream, text)))
        above = self.parents if tell is None else tell
        above = tuple(p for p in above if p != skip)
        if kind and above:
            out.append(Send(above, Failed(self.stream, culprit, kind, reason)))
        return out

    def _move(self, new: RelayState) -> None:
        if new not in RELAY_TRANSITIONS[self.state]:
            raise LocalProtocolError(f"relay cannot go from {self.state.name} to {new.name}")
        self.state = new

    def _chunk_problem(self, sender: str, index: object, length: int) -> Optional[str]:
        """Why a chunk breaks the stream, or None."""
        first = self._first
        if first is None or self.state is not RelayState.STREAMING or type(index) is not int:
            return f"chunk {index!r} while {self.state.value}"
        st = self._stripes.get(index % first.stripes)
        if st is None or st.parent != sender or not st.accept_sent:
            return f"chunk {index} from a target that is not its stripe's parent"
        expected = index % first.stripes + st.received * first.stripes
        if index != expected or st.received >= self._stripe_chunks(index % first.stripes):
            return f"chunk {index}, expected {expected} of its stripe"
        want = min(first.chunk_size, first.size - index * first.chunk_size)
        if length != want:
            return f"chunk {index} of {length} bytes, expected {want}"
        return None
