"""The sending side of a swarm push: one read of each chunk, one send, lock-step acks.

Sender lifecycle (:class:`SwarmSender`), push's own::

    OPENING --every root accepted--> STREAMING --last chunk sent, End sent--> ENDING
       \\                                 \\                                   | every
        \\_________________________________\\___________________> FAILED      | root Done
          (a refusal or failure reported from any target, a root lost,       v
           a root silent for chunk_timeout, our source failing)             DONE

The sender's only direct targets are the roots of the plan's trees (one per stripe);
each root answers for its whole tree (see :mod:`zfs.protocol.swarm.relay`). Chunk ``i``
is read once and sent once, to the root of stripe ``i % stripes``. A root's ack of
``n`` chunks of its stripe means every target holds them, so the sender knows the
prefix of the file every target holds, and reads a new chunk only while fewer than
``window_chunks`` chunks lie beyond that prefix. The window must cover a chunk's trip
down the deepest tree and its ack's trip back (about ``fanout * depth`` chunk times
plus ``2 * depth`` one-way latencies), and should not be much larger: beyond that, the
extra chunks only queue on the links, where a target's download link is shared by the
stripe it must pass on and the stripes that end there, and the first waits behind the
others (``benchmarks/swarmsim.py`` measures this; ``push_window`` there is the rule).

Why not PushSender itself. With one stripe (a chain, or one tree) the sender has one
direct target, the root, and this is PushSender with ``targets=(root,)`` word for word
(open, accept, chunk, ack, end, done, abort; acks count chunks here, bytes there), save
two things: a failure comes up from a whole subtree, so the culprit is the one the
``Failed`` names, not the root that passed it on; and a repeated ack is a keepalive,
proof that the root is alive while a target deeper down is slow, so that the relay
next to a silent target times it out and names it before the sender times out the
root. A shell may drive an unchanged PushSender over the root if it takes the culprit
from the message and gives the sender a longer chunk_timeout than the relays (``depth``
times theirs). With several stripes each root gets only its stripe's chunks, which
PushSender (every chunk to every target) cannot say: hence this core.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional, Union

from zfs.protocol.errors import LocalProtocolError
from zfs.protocol.swarm.plan import Plan
from zfs.protocol.swarm.wire import LOST, PROTOCOL, SOURCE, TIMEOUT, Abort, Chunk, Open, Send


class SenderState(enum.Enum):
    """Where a swarm push is at its sender."""

    OPENING = "opening"
    STREAMING = "streaming"
    ENDING = "ending"
    DONE = "done"
    FAILED = "failed"


SENDER_TRANSITIONS: dict[SenderState, tuple[SenderState, ...]] = {
    SenderState.OPENING: (SenderState.STREAMING, SenderState.FAILED),
    SenderState.STREAMING: (SenderState.ENDING, SenderState.FAILED),
    SenderState.ENDING: (SenderState.DONE, SenderState.FAILED),
    SenderState.DONE: (),
    SenderState.FAILED: (),
}


@dataclass(frozen=True, slots=True)
class ReadChunk:
    """Read chunk ``index`` (``length`` bytes at ``offset``), then call ``chunk_read``."""

    index: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class SendEnd:
    """Tell ``to`` the file ended at ``size``, with the digest of what the shell read."""

    to: tuple[str, ...]
    size: int


@dataclass(frozen=True, slots=True)
class Progressed:
    """Every target now holds the first ``bytes_done`` bytes."""

    bytes_done: int


@dataclass(frozen=True, slots=True)
class Finished:
    """The push is over: ``ok``, or failed because of ``culprit`` (None: our side)."""

    ok: bool
    culprit: Optional[str] = None
    kind: str = ""
    reason: str = ""


SenderCommand = Union[Send, ReadChunk, SendEnd, Progressed, Finished]


class SwarmSender:
    """The sending side of one swarm push over a :class:`Plan` of the targets.

    Args:
        plan: the stripes' trees (:func:`zfs.protocol.swarm.plan.plan`).
        stream: the stream's id, unique at the sender.
        name, channel, topic: what the targets file it under.
        size: the file's size (a swarm push needs it up front).
        chunk_size: bytes per chunk.
        window_chunks: chunks that may lie beyond what every target holds.
        chunk_timeout: seconds a target may owe its parent an answer; the relays use it too.
    """

    def __init__(self, plan: Plan, *, stream: str, name: str, channel: str, topic: str,
                 size: int, chunk_size: int, window_chunks: int, chunk_timeout: float) -> None:
        if size < 0 or chunk_size < 1 or window_chunks < 1 or not chunk_timeout > 0:
            raise LocalProtocolError("size >= 0; chunk_size, window_chunks, chunk_timeout > 0")
        self.plan = plan
        self.size = size
        self.chunk_size = chunk_size
        self.window_chunks = window_chunks
        self.chunk_timeout = chunk_timeout
        self.state = SenderState.OPENING
        self.total = -(-size // chunk_size)
        self.sent = 0                            # chunks sent (the next one to read)
        self._opens = [Open(stream, j, tree, name, size, chunk_size, plan.stripes, plan.fanout,
                            chunk_timeout, channel, topic) for j, tree in enumerate(plan.trees)]
        self._stream = stream
        self._accepted: set[int] = set()
        self._done: set[int] = set()
        self._acked = [0] * plan.stripes         # chunks of each stripe every target holds
        self._heard = [0.0] * plan.stripes
        self._prefix = 0
        self._reading = False
        self._started = False

    @property
    def finished(self) -> bool:
        """True once the push is DONE or FAILED."""
        return self.state in (SenderState.DONE, SenderState.FAILED)

    @property
    def bytes_done(self) -> int:
        """Bytes every target holds."""
        return min(self._prefix * self.chunk_size, self.size)

    def start(self, now: float) -> list[SenderCommand]:
        """Begin: open the stream at the root of every stripe."""
        if self._started:
            raise LocalProtocolError("start() called twice")
        self._started = True
        self._heard = [now] * self.plan.stripes
        return [Send((o.members[0],), o) for o in self._opens]

    # -- from the roots

    def accepted(self, root: str, stripe: object, now: float) -> list[SenderCommand]:
        """A root and its whole tree opened the stream."""
        j = self._stripe_of(root, stripe, now)
        if j is None or j in self._accepted:
            return []
        if self.state is not SenderState.OPENING:
            return self._fail(root, PROTOCOL, "accept after the stream began")
        self._accepted.add(j)
        if len(self._accepted) < self.plan.stripes:
            return []
        self._move(SenderState.STREAMING)
        return self._end(now) if self.total == 0 else self._fill()

    def ack_received(self, root: str, stripe: object, count: object,
                     now: float) -> list[SenderCommand]:
        """Every target of a root's tree holds the first ``count`` chunks of its stripe."""
        j = self._stripe_of(root, stripe, now)
        if j is None:
            return []
        sent = len(range(j, self.sent, self.plan.stripes))
        if type(count) is not int or not 0 <= count <= sent:
            return self._fail(root, PROTOCOL, f"ack of {count!r} chunks, {sent} sent")
        if count <= self._acked[j]:
            return []                            # a keepalive or a late repeat
        self._acked[j] = count
        prefix = min(min(j + n * self.plan.stripes for j, n in enumerate(self._acked)),
                     self.total)
        if prefix <= self._prefix:
            return self._fill()
        self._prefix = prefix
        return [Progressed(self.bytes_done), *self._fill()]

    def done_received(self, root: str, stripe: object, now: float) -> list[SenderCommand]:
        """A root's whole tree committed the file."""
        j = self._stripe_of(root, stripe, now)
        if j is None or j in self._done:
            return []
        if self.state is not SenderState.ENDING:
            return self._fail(root, PROTOCOL, "done before the stream ended")
        self._done.add(j)
        if len(self._done) < self.plan.stripes:
            return []
        self._move(SenderState.DONE)
        return [Finished(True)]

    def failed_received(self, root: str, culprit: object, kind: object, reason: object,
                        now: float) -> list[SenderCommand]:
        """Something failed in a root's tree; ``culprit`` is the target it names."""
        if self.finished or root not in self.plan.roots:
            return []
        if not (isinstance(culprit, str) and isinstance(kind, str) and isinstance(reason, str)):
            return self._fail(root, PROTOCOL, "malformed failure report")
        return self._fail(culprit, kind, reason)

    def target_lost(self, site: str, now: float) -> list[SenderCommand]:
        """The runtime reports a site down; only the roots are ours to watch."""
        if self.finished or site not in self.plan.roots:
            return []
        return self._fail(site, LOST, "site lost")

    # -- from our own shell

    def chunk_read(self, index: int, length: int, now: float) -> list[SenderCommand]:
        """The shell read chunk ``index`` for the last ReadChunk."""
        if self.finished:
            return []
        wanted = self._length(index)
        if not self._reading or index != self.sent:
            raise LocalProtocolError(f"chunk_read({index}) without a matching ReadChunk")
        self._reading = False
        if length != wanted:
            return self._fail(None, SOURCE, f"source changed: {length} bytes of chunk "
                              f"{index}, {wanted} expected")
        j = index % self.plan.stripes
        if self._acked[j] == len(range(j, self.sent, self.plan.stripes)):
            self._heard[j] = now                 # its root owed nothing until now
        self.sent += 1
        out: list[SenderCommand] = [Send((self.plan.roots[j],), Chunk(self._stream, index))]
        return out + (self._end(now) if self.sent == self.total else self._fill())

    def source_failed(self, reason: str, now: float) -> list[SenderCommand]:
        """Our source could not be read."""
        return [] if self.finished else self._fail(None, SOURCE, reason)

    def time_passed(self, now: float) -> list[SenderCommand]:
        """Fail if a root owes us an answer and has said nothing for chunk_timeout."""
        if self.finished or not self._started:
            return []
        for j, heard in enumerate(self._heard):
            if self._owes(j) and now - heard > self.chunk_timeout:
                return self._fail(self.plan.roots[j], TIMEOUT,
                                  f"no answer within {self.chunk_timeout:g} s")
        return []

    # -- internals

    def _stripe_of(self, root: str, stripe: object, now: float) -> Optional[int]:
        if self.finished or type(stripe) is not int or not 0 <= stripe < self.plan.stripes \
                or self.plan.roots[stripe] != root:
            return None
        self._heard[stripe] = now
        return stripe

    def _length(self, index: int) -> int:
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def _owes(self, j: int) -> bool:
        if self.state is SenderState.OPENING:
            return j not in self._accepted
        if self.state is SenderState.ENDING:
            return j not in self._done
        return self._acked[j] < len(range(j, self.sent, self.plan.stripes))

    def _fill(self) -> list[SenderCommand]:
        if self.state is not SenderState.STREAMING or self._reading or self.sent >= self.total \
                or self.sent - self._prefix >= self.window_chunks:
            return []
        self._reading = True
        return [ReadChunk(self.sent, self.sent * self.chunk_size, self._length(self.sent))]

    def _end(self, now: float) -> list[SenderCommand]:
        self._heard = [now] * self.plan.stripes
        self._move(SenderState.ENDING)
        return [SendEnd(tuple(dict.fromkeys(self.plan.roots)), self.size)]

    def _fail(self, culprit: Optional[str], kind: str, reason: str) -> list[SenderCommand]:
        self._move(SenderState.FAILED)
        skip = culprit if kind == LOST else None
        roots = tuple(r for r in dict.fromkeys(self.plan.roots) if r != skip)
        out: list[SenderCommand] = []
        if roots:
            out.append(Send(roots, Abort(self._stream, f"{culprit or 'sender'}: {reason}")))
        return out + [Finished(False, culprit, kind, reason)]

    def _move(self, new: SenderState) -> None:
        if new not in SENDER_TRANSITIONS[self.state]:
            raise LocalProtocolError(f"sender cannot go from {self.state.name} to {new.name}")
        self.state = new
