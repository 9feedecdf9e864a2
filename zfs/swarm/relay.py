"""A target's side of a swarm push: the site's relay actor, ``"zfs.swarm"``.

:class:`RelayActor` drives one :class:`zfs.protocol.swarm.relay.Relay` per inbound
stream. It writes chunks into a :class:`~zfs.partials.PartialFile` as the push
receiver does (digest checked before the rename, nothing left that looks complete),
passes each chunk on to its children in the stream's trees as the same payload frame
it arrived in, and answers its parents for its whole subtree. It takes streams for the
(channel, topic) pairs that :func:`zfs.register_receiver` registered, with the same
folder, callbacks and limits.

A target links to its children itself: the ``Open`` says where each member of its
subtree listens, and a child not linked yet is dialled without waiting
(:class:`~zfs.swarm.dialer.Dialer`): what goes to it is held until its own link is up
(a chunk going directly must not overtake the ``Open`` going round a relay). One that
is not linked within 5 s fails the push as ``unreachable``, which tells the sender to
push the star way instead.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import actors
from zfs.errors import IntegrityError, ZfsError
from zfs.partials import PartialFile, check_room
from zfs.protocol.errors import RemoteProtocolError
from zfs.protocol.swarm import codec
from zfs.protocol.swarm import relay as core
from zfs.protocol.swarm.opening import StreamLimits
from zfs.protocol.swarm.wire import (REFUSED, Abort, Accept, Ack, Chunk, Done, End, Failed,
                                     Open, Send)
from zfs.results import Progress, ReceivedFile
from zfs.shell import Shell, run_callback, tell_or_log
from zfs.supervisor import Tick, remove_later, watch_time
from zfs.swarm.dialer import Dialer

log = logging.getLogger(__name__)

RELAY = "zfs.swarm"          # every site's relay actor; "<site>/zfs.swarm"
_REMEMBER_ENDED = 1024       # ended streams whose late messages are ignored


@dataclass(frozen=True, slots=True)
class SwarmRegistration:
    """Take swarm pushes for (channel, topic) into ``dest_dir`` (told by register_receiver)."""

    channel: str
    topic: str
    dest_dir: str
    on_done: Optional[Callable[[ReceivedFile], Any]]
    on_chunk: Optional[Callable[[Progress], Any]]
    limits: StreamLimits


@dataclass(frozen=True, slots=True)
class SwarmUnregistration:
    """Refuse new swarm pushes for (channel, topic)."""

    channel: str
    topic: str


@dataclass(slots=True)
class _Stream:
    """One inbound swarm push: its core, its file, and who its neighbours are."""

    core: core.Relay
    registration: Optional[SwarmRegistration]
    origin: str
    context: Any
    size: int = 0
    partial: Optional[PartialFile] = None
    parents: dict[str, str] = field(default_factory=dict)      # site -> actor address
    endpoints: dict[str, str] = field(default_factory=dict)    # member -> endpoint


class RelayActor(Shell):
    """Every inbound swarm push of this site: write, pass on, aggregate, fail naming whom.

    Args:
        max_streams: inbound swarm streams at once; more are refused.
    """

    def __init__(self, max_streams: int = 256) -> None:
        super().__init__()
        self._max_streams = max_streams
        self._registrations: dict[tuple[str, str], SwarmRegistration] = {}
        self._streams: dict[str, _Stream] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._current: Optional[_Stream] = None     # whose commands are being carried out
        self._payload: tuple[Any, ...] = ()          # the chunk being handled
        self._dialer = Dialer(self.site)
        self.receives = {
            codec.Opening: self._on_open,
            codec.Probe: lambda _: self.site.endpoint or "",
            Chunk: self._on_chunk,
            End: lambda m: self._upstream(m, lambda c, s, now: c.end_received(
                s, m.size, m.digest, now)),
            Abort: lambda m: self._upstream(m, lambda c, s, now: c.abort_received(
                s, m.reason, now)),
            Accept: lambda m: self._upstream(m, lambda c, s, now: c.accept_received(
                s, m.stripe, now)),
            Ack: lambda m: self._upstream(m, lambda c, s, now: c.ack_received(
                s, m.stripe, m.count, now)),
            Done: lambda m: self._upstream(m, lambda c, s, now: c.done_received(
                s, m.stripe, now)),
            Failed: lambda m: self._upstream(m, lambda c, s, now: c.failed_received(
                s, m.culprit, m.kind, m.reason, now)),
            Tick: self._on_tick, actors.PeerDown: self._on_peer_down,
            actors.PeerUp: lambda event: self._release(self._dialer.linked(event.name)),
            SwarmRegistration: self._register, SwarmUnregistration: self._unregister,
        }
        self.carries_out = {
            Send: self._send, core.CreateFile: self._create, core.WriteChunk: self._write,
            core.CommitFile: self._commit, core.Discard: self._discard,
        }

    def on_start(self) -> None:
        self.site.watch_peers(self.actor_ref)
        watch_time(self.site, self.name)

    def on_stop(self) -> None:
        for stream in self._streams.values():
            if stream.partial is not None:
                self._drop(stream.partial)
        self._streams.clear()

    def on_receive(self, message: Any) -> Any:
        if type(message) is list:
            try:
                message = codec.decode(message)
            except RemoteProtocolError as err:
                log.warning("%s: bad swarm message from %s dropped: %s", self.address,
                            self.sender, err)
                return None
        return super().on_receive(message)

    # -- what arrives

    def _peer(self) -> Optional[str]:
        """The site a message came from, if it came from a peer's actor (not app code)."""
        sender = self.sender or ""
        site, slash, _ = sender.partition("/")
        return site if slash and site != self.site.name else None

    def _on_open(self, msg: codec.Opening) -> None:
        site, sid = self._peer(), msg.open.stream
        if site is None or sid in self._ended:
            return
        stream = self._streams.get(sid) or self._new_stream(site, msg)
        if stream is None:
            return
        stream.parents.setdefault(site, str(self.sender))
        for member, endpoint in zip(msg.open.members, msg.endpoints):
            stream.endpoints.setdefault(member, endpoint)
        self._drive(stream, stream.core.open_received(site, msg.open, time.monotonic()))

    def _new_stream(self, site: str, msg: codec.Opening) -> Optional[_Stream]:
        if len(self._streams) >= self._max_streams:
            refusal = Failed(msg.open.stream, self.site.name, REFUSED, "too many streams")
            self._tell(str(self.sender), refusal)
            return None
        reg = self._registrations.get((msg.open.channel, msg.open.topic))
        relay = core.Relay(self.site.name, reg.limits if reg is not None else None)
        stream = _Stream(relay, reg, msg.origin, msg.context, size=msg.open.size)
        self._streams[msg.open.stream] = stream
        return stream

    def _on_chunk(self, msg: Chunk) -> None:
        payload = self.payload
        length = len(payload[0]) if len(payload) == 1 else -1
        self._payload = payload
        try:
            self._upstream(msg, lambda c, s, now: c.chunk_received(s, msg.index, length, now))
        finally:
            self._payload = ()

    def _upstream(self, msg: Any, event: Callable[[core.Relay, str, float], list[Any]]) -> None:
        """Hand a neighbour's message about a stream we hold to its core."""
        site, stream = self._peer(), self._streams.get(msg.stream)
        if site is not None and stream is not None:
            self._drive(stream, event(stream.core, site, time.monotonic()))

    def _on_tick(self, tick: Tick) -> None:
        released, given_up = self._dialer.check(time.monotonic())
        self._release(released)
        for peer in given_up:
            child = peer.partition("/")[0]
            for stream in list(self._streams.values()):
                self._drive(stream, stream.core.child_unreachable(
                    child, "not linked within 5 s of dialling it", time.monotonic()))
        for stream in list(self._streams.values()):
            self._drive(stream, stream.core.time_passed(tick.now))

    def _on_peer_down(self, event: actors.PeerDown) -> None:
        now = time.monotonic()
        for stream in list(self._streams.values()):
            self._drive(stream, stream.core.site_lost(event.name, now))

    def _register(self, msg: SwarmRegistration) -> None:
        self._registrations[(msg.channel, msg.topic)] = msg

    def _unregister(self, msg: SwarmUnregistration) -> None:
        self._registrations.pop((msg.channel, msg.topic), None)

    # -- carrying out a stream's commands

    def _drive(self, stream: _Stream, commands: list[Any]) -> None:
        """Carry out ``commands`` of ``stream``; forget the stream once it ended."""
        self._current = stream
        try:
            self.run(commands)
        finally:
            self._current = None
        if stream.core.finished:
            self._forget(stream)

    def _forget(self, stream: _Stream) -> None:
        for sid, held in list(self._streams.items()):
            if held is stream:
                del self._streams[sid]
                self._ended[sid] = None
        while len(self._ended) > _REMEMBER_ENDED:
            self._ended.popitem(last=False)

    def _stream(self) -> _Stream:
        assert self._current is not None
        return self._current

    def _send(self, cmd: Send) -> list[Any]:
        stream, caused = self._stream(), []
        for to in cmd.to:
            message: Any = cmd.message
            if isinstance(message, Open):
                caused += self._link(stream, to)
                if stream.core.finished:     # the child cannot be reached: the push failed
                    break
                message = codec.Opening(message, tuple(stream.endpoints.get(m, "")
                                                       for m in message.members),
                                        stream.origin, stream.context)
            payload = self._payload if isinstance(message, Chunk) else ()
            address = stream.parents.get(to, f"{to}/{RELAY}")
            if self._dialer.hold(address, (stream, message, payload)):
                continue                     # its link is not up yet: sent once it is
            caused += self._deliver(stream, to, address, message, payload)
        return caused

    def _deliver(self, stream: _Stream, to: str, address: str, message: Any,
                 payload: tuple[Any, ...]) -> list[Any]:
        """Tell ``message``; a child we cannot tell is lost to the stream."""
        if not self._tell(address, message, payload) and to in stream.core.children \
                and not isinstance(message, Abort):
            return stream.core.site_lost(to, time.monotonic())
        return []

    def _release(self, held: list[tuple[str, Any]]) -> None:
        """Send what waited for a child's link, in order, for the streams still here."""
        for address, (stream, message, payload) in held:
            if any(kept is stream for kept in self._streams.values()):
                to = address.partition("/")[0]
                self._drive(stream, self._deliver(stream, to, address, message, payload))

    def _tell(self, address: str, message: Any, payload: tuple[Any, ...] = ()) -> bool:
        return tell_or_log(self.site, address, codec.encode(message), payload)

    def _link(self, stream: _Stream, child: str) -> list[Any]:
        """Make sure this site has (or is opening) its own link to ``child``; what
        failing to caused.

        A child reachable only through a relay site is dialled too: until its link is
        up a message would take the relayed route, and a chunk going directly could
        overtake the ``Open`` going round, so what goes to it waits (see :meth:`_send`).
        """
        if child in self.site.peers():
            return []
        endpoint, now = stream.endpoints.get(child, ""), time.monotonic()
        if not endpoint.startswith("tcp://"):
            return stream.core.child_unreachable(child, f"no endpoint to dial ({endpoint!r})",
                                                 now)
        if not self._dialer.dial(f"{child}/{RELAY}", endpoint, now):
            return stream.core.child_unreachable(child, f"cannot dial {endpoint}", now)
        return []

    def _create(self, cmd: core.CreateFile) -> list[Any]:
        stream, now = self._stream(), time.monotonic()
        reg = stream.registration
        assert reg is not None          # the core refuses a stream nobody registered for
        try:
            check_room(reg.dest_dir, stream.size)
            stream.partial = PartialFile(reg.dest_dir, cmd.name)
        except (OSError, ZfsError) as err:
            return stream.core.io_failed(f"cannot create the file: {err}", now)
        return stream.core.file_created(now)

    def _write(self, cmd: core.WriteChunk) -> list[Any]:
        stream, now = self._stream(), time.monotonic()
        partial, reg = stream.partial, stream.registration
        assert partial is not None and reg is not None
        try:
            partial.write_at(cmd.offset, self._payload[0])
        except OSError as err:
            return stream.core.io_failed(f"cannot write: {err}", now)
        caused = stream.core.chunk_written(cmd.index, now)
        if reg.on_chunk is not None:
            run_callback(reg.on_chunk, Progress(partial.name, cmd.offset + cmd.length,
                                                stream.size, stream.origin, stream.context))
        return caused

    def _commit(self, cmd: core.CommitFile) -> list[Any]:
        stream, now = self._stream(), time.monotonic()
        partial, reg = stream.partial, stream.registration
        assert partial is not None and reg is not None
        stream.partial = None
        try:
            location = partial.commit(cmd.size, cmd.digest)
        except IntegrityError as err:
            self._drop(partial)
            return stream.core.commit_failed(err.reason, now)
        except OSError as err:
            self._drop(partial)
            return stream.core.io_failed(f"cannot commit: {err}", now)
        if reg.on_done is not None:
            run_callback(reg.on_done, ReceivedFile(partial.name, location, cmd.size,
                                                   stream.context, stream.origin,
                                                   reg.channel, reg.topic))
        return stream.core.committed(now)

    def _discard(self, cmd: core.Discard) -> None:
        stream = self._stream()
        if stream.partial is not None:
            log.info("swarm push of %s discarded: %s", stream.partial.name, cmd.reason)
            self._drop(stream.partial)
            stream.partial = None

    def _drop(self, partial: PartialFile) -> None:
        """Delete a partial file now, or have the supervisor retry until it can."""
        if not partial.discard():
            remove_later(self.site, partial.temp_path)
