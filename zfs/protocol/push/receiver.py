"""The receiving side of the push protocol: every inbound stream of one site.

Receiver lifecycle, per inbound stream (:class:`PushReceiver`)::

    CREATING --file created--> RECEIVING --end matches--> COMMITTING --committed--> gone (done sent)
         any error, abort, inactivity or loss of the sender's site: discarded (gone),
         error sent unless aborted or lost

A stream is refused before anything is created when no registration takes its
(channel, topic), its name is not a plain file name, or it is over the limits.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

from zfs.protocol.names import name_problem
from zfs.protocol.errors import Failure, LocalProtocolError
from zfs.protocol.states import Transitions, move


class StreamState(enum.Enum):
    """Where an inbound stream is in its lifecycle (it is forgotten when it ends)."""

    CREATING = "creating"
    RECEIVING = "receiving"
    COMMITTING = "committing"


STREAM_TRANSITIONS: Transitions[StreamState] = {
    StreamState.CREATING: frozenset({StreamState.RECEIVING}),
    StreamState.RECEIVING: frozenset({StreamState.COMMITTING}),
    StreamState.COMMITTING: frozenset(),
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
    failure: Failure
    reason: str


@dataclass(frozen=True, slots=True)
class Discard:
    """Delete the stream's partial file and forget it."""

    key: Key
    reason: str


ReceiverCommand = Union[CreateFile, Accept, Refuse, WriteChunk, SendAck, CommitFile, SendDone,
                        SendError, Discard]


@dataclass(slots=True)
class _Stream:
    state: StreamState
    size: Optional[int]
    chunk_size: int
    limits: Limits
    active_at: float
    received: int = 0
    ack_every: int = 1     # chunks written per ack (half the sender's window)
    acked: int = 0


class PushReceiver:
    """Every inbound push stream of one site, keyed by (sender address, stream id).

    Args:
        max_streams: streams open at once; more are refused.
        max_streams_per_site: streams open at once from one sending site, so one peer
            cannot take every slot.
    """

    def __init__(self, max_streams: int = 256, max_streams_per_site: int = 32) -> None:
        self.max_streams = max_streams
        self.max_streams_per_site = max_streams_per_site
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
                      channel: object, topic: object, now: float,
                      window_chunks: int = 1) -> List[ReceiverCommand]:
        """A sender opens a stream; it keeps up to ``window_chunks`` chunks un-acked."""
        if key in self._streams:
            return self._error(key, Failure.PROTOCOL, "stream opened twice")
        limits = None
        if isinstance(channel, str) and isinstance(topic, str):
            limits = self._registrations.get((channel, topic))
        problem = _open_problem(limits, name, size, chunk_size)
        if problem is None:
            problem = self._crowding_problem(key)
        if problem is not None:
            return [Refuse(key, problem)]
        assert limits is not None and isinstance(name, str) and isinstance(chunk_size, int)
        assert isinstance(channel, str) and isinstance(topic, str)
        declared = size if isinstance(size, int) else None
        stream = _Stream(StreamState.CREATING, declared, chunk_size, limits, now)
        if window_chunks >= 4:
            # One ack per half window: the sender still has chunks to send when it
            # comes, and half the acks cross two threads and two mailboxes less.
            stream.ack_every = window_chunks // 2
        self._streams[key] = stream
        return [CreateFile(key, name, (channel, topic))]

    def _crowding_problem(self, key: Key) -> Optional[str]:
        """Refuse a stream past the site-wide limit, or past one sending site's share."""
        if len(self._streams) >= self.max_streams:
            return f"too many streams ({self.max_streams})"
        site = key[0].partition("/")[0]
        from_site = sum(1 for other in self._streams if other[0].partition("/")[0] == site)
        if from_site >= self.max_streams_per_site:
            return f"too many streams from site {site} ({self.max_streams_per_site})"
        return None

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
        return self._error(key, Failure.IO, reason)

    def chunk_received(self, key: Key, offset: object, length: int,
                       now: float) -> List[ReceiverCommand]:
        """A chunk of ``length`` bytes for ``offset`` arrived."""
        stream = self._streams.get(key)
        if stream is None:
            return [SendError(key, Failure.PROTOCOL, "unknown stream")]
        problem = _chunk_problem(stream, offset, length)
        if problem is not None:
            return self._error(key, Failure.PROTOCOL, problem)
        stream.active_at = now
        return [WriteChunk(key, stream.received)]

    def chunk_written(self, key: Key, offset: int, length: int,
                      now: float) -> List[ReceiverCommand]:
        """The shell wrote the chunk that WriteChunk named."""
        stream = self._expect(key, StreamState.RECEIVING)
        if offset != stream.received:
            raise LocalProtocolError(f"chunk_written({offset}), expected {stream.received}")
        stream.received += length
        stream.active_at = now
        if (stream.received - stream.acked < stream.ack_every * stream.chunk_size
                and stream.received != stream.size):
            return []
        stream.acked = stream.received
        return [SendAck(key, stream.received, stream.size)]

    def end_received(self, key: Key, size: object, digest: object,
                     now: float) -> List[ReceiverCommand]:
        """The sender says the stream ended at ``size`` with ``digest``."""
        stream = self._streams.get(key)
        if stream is None:
            return [SendError(key, Failure.PROTOCOL, "unknown stream")]
        if stream.state is not StreamState.RECEIVING:
            return self._error(key, Failure.PROTOCOL, f"end while {stream.state.value}")
        if not isinstance(digest, str) or size != stream.received \
                or (stream.size is not None and size != stream.size):
            return self._error(key, Failure.INTEGRITY, f"ended at {size!r} bytes, "
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
        return self._error(key, Failure.INTEGRITY, reason)

    def protocol_broken(self, key: Key, reason: str, now: float) -> List[ReceiverCommand]:
        """The sender sent a malformed message for this stream: it ends here."""
        if key not in self._streams:
            return []
        return self._error(key, Failure.PROTOCOL, reason)

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
                cmds += self._error(key, Failure.TIMEOUT, f"no activity for {idle:.1f} s")
        return cmds

    def _error(self, key: Key, failure: Failure, reason: str) -> List[ReceiverCommand]:
        self._streams.pop(key, None)
        return [SendError(key, failure, reason), Discard(key, reason)]

    def _expect(self, key: Key, state: StreamState) -> _Stream:
        stream = self._streams.get(key)
        if stream is None or stream.state is not state:
            raise LocalProtocolError(f"stream {key!r} is not {state.value}")
        return stream

    @staticmethod
    def _move(stream: _Stream, new: StreamState) -> None:
        stream.state = move(STREAM_TRANSITIONS, stream.state, new, "stream")


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
