"""The push protocol: one sender streams one file to several targets in lock-step.

Pure cores, in the style of h11: inputs are calls named for what happened, outputs
are lists of small frozen commands that the actor shells carry out (send, read,
write, commit, discard). No I/O, no clocks: ``now`` is monotonic seconds passed in.
File bytes never pass through here; a command names a chunk by offset and length.

Wire exchange, per target (all targets see the same sequence)::

    sender                         receiver
    open(name, size?, chunk_size) ->           (refuse | accept)
    chunk(offset) + bytes        ->  ... up to window_chunks un-acked
                                 <-  ack(received)             cumulative
    end(size, digest)            ->            commit: size + digest, rename
                                 <-  done | error(kind, reason)
    abort(reason)                ->            discard the partial file

Sender lifecycle (:class:`PushSender`)::

    OPENING --all accepted--> STREAMING --last chunk sent, end sent--> ENDING --all done--> DONE
       \\____________________________\\__________________________________\\____> FAILED
                  (a refusal, error, bad ack, loss, timeout or source failure)

Receiver lifecycle, per inbound stream (:class:`PushReceiver`)::

    CREATING --file created--> RECEIVING --end matches--> COMMITTING --committed--> gone (done sent)
         any error, abort, inactivity or loss of the sender's site: discarded (gone),
         error sent unless aborted or lost

The sender's window advances at the slowest target: a new chunk is read only while
every target has fewer than ``window_chunks`` chunks un-acked. A stream whose size is
not known in advance (a pipe) ends at the first short read.

Commit is per target: each renames its file once its own size and digest check pass.
If another target fails after that, the send fails, but a target that already
committed keeps its (complete, checked) file; nothing incomplete is ever committed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from zfs.protocol import name_problem

# Failure kinds carried by Finished and by the receiver's errors.
REFUSED = "refused"        # the target does not take this stream (registration, limits, name)
INTEGRITY = "integrity"    # size or digest differ at the end
PROTOCOL = "protocol"      # a message that breaks the exchange (offset, order, unknown stream)
IO = "io"                  # the target could not create or write its file
EXPIRED = "expired"        # no activity within the target's inactivity timeout
TIMEOUT = "timeout"        # the target did not answer within chunk_timeout
LOST = "lost"              # the runtime reported the target site down
SOURCE = "source"          # our own source could not be read, or changed


class ProtocolMisuse(RuntimeError):
    """Our own caller broke the core's contract (a bug in the shell, not a peer)."""


# ----------------------------------------------------------------------------- sender


class SenderState(enum.Enum):
    """Where a send is in its lifecycle."""

    OPENING = "opening"
    STREAMING = "streaming"
    ENDING = "ending"
    DONE = "done"
    FAILED = "failed"


SENDER_TRANSITIONS: Dict[SenderState, Tuple[SenderState, ...]] = {
    SenderState.OPENING: (SenderState.STREAMING, SenderState.FAILED),
    SenderState.STREAMING: (SenderState.ENDING, SenderState.FAILED),
    SenderState.ENDING: (SenderState.DONE, SenderState.FAILED),
    SenderState.DONE: (),
    SenderState.FAILED: (),
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
    kind: str = ""
    reason: str = ""


SenderCommand = object


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
            raise ProtocolMisuse("targets must be distinct and at least one")
        if chunk_size < 1 or window_chunks < 1 or chunk_timeout <= 0:
            raise ProtocolMisuse("chunk_size, window_chunks and chunk_timeout must be positive")
        if size is not None and size < 0:
            raise ProtocolMisuse("size must be >= 0")
        self.targets = tuple(targets)
        self.chunk_size = chunk_size
        self.window_chunks = window_chunks
        self.chunk_timeout = chunk_timeout
        self.size = size
        self.state = SenderState.OPENING
        self.sent_end = 0                       # bytes sent to every target so far
        self._accepted: set = set()
        self._done: set = set()
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
            raise ProtocolMisuse("start() called twice")
        self._started = True
        self._progress_at = {t: now for t in self.targets}
        return [SendOpen(self.targets, self.size, self.chunk_size)]

    # -- events from targets

    def accepted(self, target: str, now: float) -> List[SenderCommand]:
        """A target opened its stream."""
        if self.finished or target not in self._acked or target in self._accepted:
            return []
        if self.state is not SenderState.OPENING:
            return self._fail(target, PROTOCOL, "accept after the stream began")
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
        return self.error_received(target, REFUSED, reason, now)

    def error_received(self, target: str, kind: str, reason: str,
                       now: float) -> List[SenderCommand]:
        """A target reported that its side of the stream failed."""
        if self.finished or target not in self._acked:
            return []
        return self._fail(target, kind, reason)

    def ack_received(self, target: str, received: object, now: float) -> List[SenderCommand]:
        """A target has written ``received`` bytes (cumulative)."""
        if self.finished or target not in self._acked:
            return []
        if target not in self._accepted or type(received) is not int \
                or received > self.sent_end:
            return self._fail(target, PROTOCOL, f"ack of {received!r} bytes, "
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
            return self._fail(target, PROTOCOL, "done before the stream ended")
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
        return self._fail(target, LOST, reason or "site lost")

    # -- events from our own side

    def chunk_read(self, offset: int, length: int, now: float) -> List[SenderCommand]:
        """The shell read ``length`` bytes at ``offset`` for the last ReadChunk."""
        if self.finished:
            return []
        if not self._reading or offset != self.sent_end:
            raise ProtocolMisuse(f"chunk_read({offset}) without a matching ReadChunk")
        self._reading = False
        wanted = self._next_length()
        if length > wanted or length < 0:
            raise ProtocolMisuse(f"read {length} bytes, asked for {wanted}")
        if self.size is not None and length != wanted:
            return self._fail(None, SOURCE, f"source shrank: {length} bytes at {offset}, "
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

    def source_failed(self, reason: str, now: float) -> List[SenderCommand]:
        """Our source could not be read or changed under us."""
        if self.finished:
            return []
        return self._fail(None, SOURCE, reason)

    def time_passed(self, now: float) -> List[SenderCommand]:
        """Fail the send if a target owes an answer for longer than chunk_timeout."""
        if self.finished or not self._started:
            return []
        for target in self.targets:
            if self._owes(target) and now - self._progress_at[target] > self.chunk_timeout:
                return self._fail(target, TIMEOUT, f"no answer within {self.chunk_timeout:g} s")
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

    def _fail(self, culprit: Optional[str], kind: str, reason: str) -> List[SenderCommand]:
        self._move(SenderState.FAILED)
        others = tuple(t for t in self.targets if not (t == culprit and kind == LOST))
        cmds: List[SenderCommand] = []
        if others:
            cmds.append(SendAbort(others, f"{culprit or 'sender'}: {reason}"))
        cmds.append(Finished(False, culprit, kind, reason))
        return cmds

    def _move(self, new: SenderState) -> None:
        if new not in SENDER_TRANSITIONS[self.state]:
            raise ProtocolMisuse(f"sender cannot go from {self.state.name} to {new.name}")
        self.state = new


# ----------------------------------------------------------------------------- receiver


class StreamState(enum.Enum):
    """Where an inbound stream is in its lifecycle (it is forgotten when it ends)."""

    CREATING = "creating"
    RECEIVING = "receiving"
    COMMITTING = "committing"


STREAM_TRANSITIONS: Dict[StreamState, Tuple[StreamState, ...]] = {
    StreamState.CREATING: (StreamState.RECEIVING,),
    StreamState.RECEIVING: (StreamState.COMMITTING,),
    StreamState.COMMITTING: (),
}

Key = Tuple[str, str]   # (sender address, stream id)


@dataclass(frozen=True, slots=True)
class Limits:
    """What a registration accepts: file and chunk sizes, and inactivity before expiry."""

    max_size: int = 1 << 40
    max_chunk_size: int = 64 << 20
    inactivity_timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class CreateFile:
    """Create the partial file of a new stream, then call ``file_created``."""

    key: Key
    name: str
    registration: Tuple[str, str]


@dataclass(frozen=True, slots=True)
class Accept:
    """Tell the sender the stream is open."""

    key: Key


@dataclass(frozen=True, slots=True)
class Refuse:
    """Tell the sender the stream is refused (nothing was created)."""

    key: Key
    reason: str


@dataclass(frozen=True, slots=True)
class WriteChunk:
    """Write the current message's payload at ``offset``, then call ``chunk_written``."""

    key: Key
    offset: int


@dataclass(frozen=True, slots=True)
class SendAck:
    """Tell the sender ``received`` bytes are written (of ``size``, if known)."""

    key: Key
    received: int
    size: Optional[int]


@dataclass(frozen=True, slots=True)
class CommitFile:
    """Check size and digest and rename into place, then call ``committed``."""

    key: Key
    size: int
    digest: str


@dataclass(frozen=True, slots=True)
class SendDone:
    """Tell the sender the file is committed."""

    key: Key


@dataclass(frozen=True, slots=True)
class SendError:
    """Tell the sender its stream failed here."""

    key: Key
    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class Discard:
    """Delete the stream's partial file and forget it."""

    key: Key
    reason: str


ReceiverCommand = object


@dataclass(slots=True)
class _Stream:
    state: StreamState
    size: Optional[int]
    chunk_size: int
    limits: Limits
    active_at: float
    received: int = 0


class PushReceiver:
    """Every inbound push stream of one site, keyed by (sender address, stream id).

    Args:
        max_streams: streams open at once; more are refused.
    """

    def __init__(self, max_streams: int = 256) -> None:
        self.max_streams = max_streams
        self._registrations: Dict[Tuple[str, str], Limits] = {}
        self._streams: Dict[Key, _Stream] = {}

    @property
    def streams(self) -> Tuple[Key, ...]:
        """The keys of the streams in progress."""
        return tuple(self._streams)

    def registration_added(self, channel: str, topic: str, limits: Limits) -> None:
        """Accept streams for (channel, topic) from now on, within ``limits``."""
        self._registrations[(channel, topic)] = limits

    def registration_removed(self, channel: str, topic: str) -> None:
        """Refuse new streams for (channel, topic); streams in progress go on."""
        self._registrations.pop((channel, topic), None)

    def open_received(self, key: Key, name: object, size: object, chunk_size: object,
                      channel: object, topic: object, now: float) -> List[ReceiverCommand]:
        """A sender opens a stream."""
        if key in self._streams:
            return self._error(key, PROTOCOL, "stream opened twice")
        limits = None
        if isinstance(channel, str) and isinstance(topic, str):
            limits = self._registrations.get((channel, topic))
        problem = _open_problem(limits, name, size, chunk_size)
        if problem is None and len(self._streams) >= self.max_streams:
            problem = f"too many streams ({self.max_streams})"
        if problem is not None:
            return [Refuse(key, problem)]
        assert limits is not None and isinstance(name, str) and isinstance(chunk_size, int)
        assert isinstance(channel, str) and isinstance(topic, str)
        declared = size if isinstance(size, int) else None
        self._streams[key] = _Stream(StreamState.CREATING, declared, chunk_size, limits, now)
        return [CreateFile(key, name, (channel, topic))]

    def file_created(self, key: Key, now: float) -> List[ReceiverCommand]:
        """The shell created the stream's partial file."""
        stream = self._expect(key, StreamState.CREATING)
        self._move(stream, StreamState.RECEIVING)
        stream.active_at = now
        return [Accept(key)]

    def io_failed(self, key: Key, reason: str, now: float) -> List[ReceiverCommand]:
        """The shell could not create, write or rename the stream's file."""
        if key not in self._streams:
            return []
        if self._streams[key].state is StreamState.CREATING:
            del self._streams[key]
            return [Refuse(key, reason), Discard(key, reason)]
        return self._error(key, IO, reason)

    def chunk_received(self, key: Key, offset: object, length: int,
                       now: float) -> List[ReceiverCommand]:
        """A chunk of ``length`` bytes for ``offset`` arrived."""
        stream = self._streams.get(key)
        if stream is None:
            return [SendError(key, PROTOCOL, "unknown stream")]
        problem = _chunk_problem(stream, offset, length)
        if problem is not None:
            return self._error(key, PROTOCOL, problem)
        stream.active_at = now
        return [WriteChunk(key, stream.received)]

    def chunk_written(self, key: Key, offset: int, length: int,
                      now: float) -> List[ReceiverCommand]:
        """The shell wrote the chunk that WriteChunk named."""
        stream = self._expect(key, StreamState.RECEIVING)
        if offset != stream.received:
            raise ProtocolMisuse(f"chunk_written({offset}), expected {stream.received}")
        stream.received += length
        stream.active_at = now
        return [SendAck(key, stream.received, stream.size)]

    def end_received(self, key: Key, size: object, digest: object,
                     now: float) -> List[ReceiverCommand]:
        """The sender says the stream ended at ``size`` with ``digest``."""
        stream = self._streams.get(key)
        if stream is None:
            return [SendError(key, PROTOCOL, "unknown stream")]
        if stream.state is not StreamState.RECEIVING:
            return self._error(key, PROTOCOL, f"end while {stream.state.value}")
        if not isinstance(digest, str) or size != stream.received \
                or (stream.size is not None and size != stream.size):
            return self._error(key, INTEGRITY, f"ended at {size!r} bytes, "
                               f"{stream.received} received of {stream.size}")
        self._move(stream, StreamState.COMMITTING)
        stream.active_at = now
        return [CommitFile(key, stream.received, digest)]

    def committed(self, key: Key, now: float) -> List[ReceiverCommand]:
        """The shell renamed the checked file into place."""
        self._expect(key, StreamState.COMMITTING)
        del self._streams[key]
        return [SendDone(key)]

    def commit_failed(self, key: Key, reason: str, now: float) -> List[ReceiverCommand]:
        """The file did not match the sender's size or digest (the shell deleted it)."""
        self._expect(key, StreamState.COMMITTING)
        return self._error(key, INTEGRITY, reason)

    def abort_received(self, key: Key, reason: str, now: float) -> List[ReceiverCommand]:
        """The sender aborted the stream."""
        if self._streams.pop(key, None) is None:
            return []
        return [Discard(key, f"aborted by sender: {reason}")]

    def site_lost(self, site: str, now: float) -> List[ReceiverCommand]:
        """The runtime reports a site down: its streams can never finish, discard them."""
        cmds: List[ReceiverCommand] = []
        for key in [k for k in self._streams if k[0].partition("/")[0] == site]:
            del self._streams[key]
            cmds.append(Discard(key, f"sender site {site} lost"))
        return cmds

    def time_passed(self, now: float) -> List[ReceiverCommand]:
        """Expire the streams inactive for longer than their inactivity timeout."""
        cmds: List[ReceiverCommand] = []
        for key, stream in list(self._streams.items()):
            idle = now - stream.active_at
            if idle > stream.limits.inactivity_timeout:
                cmds += self._error(key, EXPIRED, f"no activity for {idle:.1f} s")
        return cmds

    def _error(self, key: Key, kind: str, reason: str) -> List[ReceiverCommand]:
        self._streams.pop(key, None)
        return [SendError(key, kind, reason), Discard(key, reason)]

    def _expect(self, key: Key, state: StreamState) -> _Stream:
        stream = self._streams.get(key)
        if stream is None or stream.state is not state:
            raise ProtocolMisuse(f"stream {key!r} is not {state.value}")
        return stream

    @staticmethod
    def _move(stream: _Stream, new: StreamState) -> None:
        if new not in STREAM_TRANSITIONS[stream.state]:
            raise ProtocolMisuse(f"stream cannot go from {stream.state.name} to {new.name}")
        stream.state = new


def _open_problem(limits: Optional[Limits], name: object, size: object,
                  chunk_size: object) -> Optional[str]:
    """Why an open must be refused, or None."""
    if limits is None:
        return "no receiver registered for this channel/topic"
    problem = name_problem(name)
    if problem is not None:
        return problem
    if size is not None and (type(size) is not int or size < 0):
        return f"bad size {size!r}"
    if size is not None and size > limits.max_size:
        return f"file of {size} bytes is over the limit of {limits.max_size}"
    if type(chunk_size) is not int or not 0 < chunk_size <= limits.max_chunk_size:
        return f"chunk size {chunk_size!r} is not within 1..{limits.max_chunk_size}"
    return None


def _chunk_problem(stream: _Stream, offset: object, length: int) -> Optional[str]:
    """Why a chunk breaks the stream, or None."""
    if stream.state is not StreamState.RECEIVING:
        return f"chunk while {stream.state.value}"
    if offset != stream.received:
        return f"chunk at {offset!r}, expected {stream.received}"
    if not 0 < length <= stream.chunk_size:
        return f"chunk of {length} bytes (chunk size {stream.chunk_size})"
    end = stream.received + length
    if stream.size is not None and end > stream.size:
        return f"data past the declared size {stream.size}"
    if end > stream.limits.max_size:
        return f"data past the limit of {stream.limits.max_size} bytes"
    return None
