"""The sending side of the push protocol: one sender, one file, several targets.

Sender lifecycle (:class:`PushSender`)::

    OPENING --all accepted--> STREAMING --last chunk sent, end sent--> ENDING --all done--> DONE
       \\____________________________\\__________________________________\\____> FAILED
                  (a refusal, error, bad ack, loss, timeout or source failure)

The sender's window advances at the slowest target: a new chunk is read only while
every target has fewer than ``window_chunks`` chunks un-acked. A stream whose size is
not known in advance (a pipe) ends at the first short read.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

from zfs.protocol.errors import Failure, LocalProtocolError
from zfs.protocol.states import Transitions, move


class SenderState(enum.Enum):
    """Where a send is in its lifecycle."""

    OPENING = "opening"
    STREAMING = "streaming"
    ENDING = "ending"
    DONE = "done"
    FAILED = "failed"


SENDER_TRANSITIONS: Transitions[SenderState] = {
    SenderState.OPENING: frozenset({SenderState.STREAMING, SenderState.FAILED}),
    SenderState.STREAMING: frozenset({SenderState.ENDING, SenderState.FAILED}),
    SenderState.ENDING: frozenset({SenderState.DONE, SenderState.FAILED}),
    SenderState.DONE: frozenset(),
    SenderState.FAILED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class SendOpen:
    """Tell every target to open a stream for this file."""

    targets: Tuple[str, ...]
    size: Optional[int]
    chunk_size: int


@dataclass(frozen=True, slots=True)
class ReadChunk:
    """Read up to ``length`` bytes at ``offset``, then call ``chunk_read``."""

    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class SendChunk:
    """Send the chunk just read (``length`` bytes at ``offset``) to every target."""

    targets: Tuple[str, ...]
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class SendEnd:
    """Tell every target the stream ended at ``size``; the shell adds its digest."""

    targets: Tuple[str, ...]
    size: int


@dataclass(frozen=True, slots=True)
class SendAbort:
    """Tell these targets to discard the stream."""

    targets: Tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Progressed:
    """A target's acked bytes moved forward."""

    target: str
    bytes_done: int


@dataclass(frozen=True, slots=True)
class Finished:
    """The send is over: ``ok``, or failed because of ``culprit`` (None: our side)."""

    ok: bool
    culprit: Optional[str] = None
    failure: Optional[Failure] = None
    reason: str = ""


SenderCommand = Union[SendOpen, ReadChunk, SendChunk, SendEnd, SendAbort, Progressed, Finished]


class PushSender:
    """The sending side of one push, to one or more targets.

    Args:
        targets: the target site names (distinct, at least one).
        chunk_size: bytes per chunk.
        window_chunks: chunks that may be un-acked by a target at once (>= 1).
        chunk_timeout: seconds a target may owe us an answer without progress.
        size: the file's size, or None for a stream that ends at its first short read.
    """

    def __init__(self, targets: Sequence[str], *, chunk_size: int, window_chunks: int,
                 chunk_timeout: float, size: Optional[int] = None) -> None:
        if not targets or len(set(targets)) != len(targets):
            raise LocalProtocolError("targets must be distinct and at least one")
        if chunk_size < 1 or window_chunks < 1 or chunk_timeout <= 0:
            raise LocalProtocolError("chunk_size, window_chunks and chunk_timeout must be positive")
        if size is not None and size < 0:
            raise LocalProtocolError("size must be >= 0")
        self.targets = tuple(targets)
        self.chunk_size = chunk_size
        self.window_chunks = window_chunks
        self.chunk_timeout = chunk_timeout
        self.size = size
        self.state = SenderState.OPENING
        self.sent_end = 0                       # bytes sent to every target so far
        self._accepted: set[str] = set()
        self._done: set[str] = set()
        self._acked: Dict[str, int] = {t: 0 for t in self.targets}
        self._progress_at: Dict[str, float] = {}
        self._reading = False
        self._started = False

    @property
    def finished(self) -> bool:
        """True once the send is DONE or FAILED."""
        return self.state in (SenderState.DONE, SenderState.FAILED)

    def start(self, now: float) -> List[SenderCommand]:
        """Begin: open the stream at every target."""
        if self._started:
            raise LocalProtocolError("start() called twice")
        self._started = True
        self._progress_at = {t: now for t in self.targets}
        return [SendOpen(self.targets, self.size, self.chunk_size)]

    # -- events from targets

    def accepted(self, target: str, now: float) -> List[SenderCommand]:
        """A target opened its stream."""
        if self.finished or target not in self._acked or target in self._accepted:
            return []
        if self.state is not SenderState.OPENING:
            return self._fail(target, Failure.PROTOCOL, "accept after the stream began")
        self._accepted.add(target)
        self._progress_at[target] = now
        if len(self._accepted) < len(self.targets):
            return []
        self._move(SenderState.STREAMING)
        if self.size == 0:
            return self._end(now)
        return self._fill()

    def refused(self, target: str, reason: str, now: float) -> List[SenderCommand]:
        """A target refused the stream."""
        return self.failure_received(target, Failure.REFUSED, reason, now)

    def failure_received(self, target: str, failure: Failure, reason: str,
                         now: float) -> List[SenderCommand]:
        """A target reported that its side of the stream failed."""
        if self.finished or target not in self._acked:
            return []
        return self._fail(target, failure, reason)

    def ack_received(self, target: str, received: object, now: float) -> List[SenderCommand]:
        """A target has written ``received`` bytes (cumulative)."""
        if self.finished or target not in self._acked:
            return []
        if target not in self._accepted or type(received) is not int \
                or received > self.sent_end:
            return self._fail(target, Failure.PROTOCOL, f"ack of {received!r} bytes, "
                              f"{self.sent_end} sent")
        if received <= self._acked[target]:
            return []                           # a late or repeated cumulative ack
        self._acked[target] = received
        self._progress_at[target] = now
        return [Progressed(target, received), *self._fill()]

    def done_received(self, target: str, now: float) -> List[SenderCommand]:
        """A target committed the file."""
        if self.finished or target not in self._acked or target in self._done:
            return []
        if self.state is not SenderState.ENDING:
            return self._fail(target, Failure.PROTOCOL, "done before the stream ended")
        self._done.add(target)
        self._progress_at[target] = now
        if len(self._done) < len(self.targets):
            return []
        self._move(SenderState.DONE)
        return [Finished(True)]

    def target_lost(self, target: str, reason: str, now: float) -> List[SenderCommand]:
        """The runtime reports a target site down."""
        if self.finished or target not in self._acked:
            return []
        return self._fail(target, Failure.LOST, reason or "site lost")

    # -- events from our own side

    def chunk_read(self, offset: int, length: int, now: float) -> List[SenderCommand]:
        """The shell read ``length`` bytes at ``offset`` for the last ReadChunk."""
        if self.finished:
            return []
        if not self._reading or offset != self.sent_end:
            raise LocalProtocolError(f"chunk_read({offset}) without a matching ReadChunk")
        self._reading = False
        wanted = self._next_length()
        if length > wanted or length < 0:
            raise LocalProtocolError(f"read {length} bytes, asked for {wanted}")
        if self.size is not None and length != wanted:
            return self._fail(None, Failure.CHANGED, f"source shrank: {length} bytes at {offset}, "
                              f"{wanted} expected")
        cmds: List[SenderCommand] = []
        if length:
            self._mark_owing(now)
            self.sent_end += length
            cmds.append(SendChunk(self.targets, offset, length))
        if length < wanted or self.sent_end == self.size:
            self.size = self.sent_end
            return cmds + self._end(now)
        return cmds + self._fill()

    def source_failed(self, reason: str, now: float,
                      failure: Failure = Failure.LOCAL) -> List[SenderCommand]:
        """Our own side failed: the source could not be read (or ``failure``: changed,
        aborted by our caller)."""
        if self.finished:
            return []
        return self._fail(None, failure, reason)

    def time_passed(self, now: float) -> List[SenderCommand]:
        """Fail the send if a target owes an answer for longer than chunk_timeout."""
        if self.finished or not self._started:
            return []
        for target in self.targets:
            if self._owes(target) and now - self._progress_at[target] > self.chunk_timeout:
                return self._fail(target, Failure.TIMEOUT, f"no answer within {self.chunk_timeout:g} s")
        return []

    # -- internals

    def _next_length(self) -> int:
        if self.size is None:
            return self.chunk_size
        return min(self.chunk_size, self.size - self.sent_end)

    def _fill(self) -> List[SenderCommand]:
        if self.state is not SenderState.STREAMING or self._reading:
            return []
        slowest = min(self._acked.values())
        if self.sent_end - slowest > (self.window_chunks - 1) * self.chunk_size:
            return []
        self._reading = True
        return [ReadChunk(self.sent_end, self._next_length())]

    def _end(self, now: float) -> List[SenderCommand]:
        assert self.size is not None
        self._mark_owing(now)
        self._move(SenderState.ENDING)
        return [SendEnd(self.targets, self.size)]

    def _owes(self, target: str) -> bool:
        if self.state is SenderState.OPENING:
            return target not in self._accepted
        if self.state is SenderState.ENDING:
            return target not in self._done
        return self._acked[target] < self.sent_end

    def _mark_owing(self, now: float) -> None:
        """Start the clock of targets that owed nothing until what we send next."""
        for target in self.targets:
            if not self._owes(target):
                self._progress_at[target] = now

    def _fail(self, culprit: Optional[str], failure: Failure, reason: str) -> List[SenderCommand]:
        self._move(SenderState.FAILED)
        others = tuple(t for t in self.targets if not (t == culprit and failure is Failure.LOST))
        cmds: List[SenderCommand] = []
        if others:
            cmds.append(SendAbort(others, f"{culprit or 'sender'}: {reason}"))
        cmds.append(Finished(False, culprit, failure, reason))
        return cmds

    def _move(self, new: SenderState) -> None:
        self.state = move(SENDER_TRANSITIONS, self.state, new, "sender")

