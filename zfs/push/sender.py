"""The sending side of a push: :func:`push_file` and the actor that streams one file.

:class:`SenderActor` (``"zfs.send.<hex>"``, one per send) drives
:class:`zfs.protocol.push.sender.PushSender`. It reads each chunk once and tells it to
every target as one raw payload frame (the same bytes object to each), computing the
digest as it reads; a window of un-acked chunks bounds its memory.
"""

from __future__ import annotations

import logging
import secrets
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Sequence, Union

import actors
from zfs.errors import TransferAborted
from zfs.buffers import BufferPool
from zfs.files import ChunkSource, Digest
from zfs.pace import check_rate
from zfs.protocol import wire
from zfs.protocol.errors import Failure, LocalProtocolError
from zfs.protocol.push import sender as core
from zfs.protocol.swarm.plan import plan
from zfs.push.receiver import RECEIVER
from zfs.push.source import Source, open_source, read_stream
from zfs.results import Progress, PushResult
from zfs.shell import (AbortRequested, Paced, PaceWake, Shell, Transfer, check_secure,
                       failure_error, run_callback)
from zfs.supervisor import Tick, ensure_supervisor, watch_time
from zfs.swarm.sender import SwarmSpec, swarm_push_async, wants_swarm

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.1      # seconds between two on_progress calls for one target


@dataclass(frozen=True, slots=True)
class _Begin:
    """Told once after spawn: start sending (from the actor's thread, as the actor)."""


@dataclass(frozen=True, slots=True)
class _OpenFailed:
    """The open ask to ``target`` failed: no receiver actor there, or the site is gone."""

    target: str
    no_receiver: bool
    reason: str


@dataclass(slots=True)
class _SendSpec:
    sid: str
    name: str
    channel: str
    topic: str
    context: Any
    source: Union[ChunkSource, BinaryIO]
    on_progress: Optional[Callable[[Progress], Any]]
    bwlimit: Optional[float] = None


class SenderActor(Shell):
    """Streams one file to its targets, then stops; the outcome resolves ``future``."""

    def __init__(self, spec: _SendSpec, sender: core.PushSender,
                 future: Future[PushResult]) -> None:
        super().__init__()
        self._spec = spec
        self._core = sender
        self._future = future
        self._digest = Digest()
        # Chunks are read into buffers used again once ZeroMQ has sent them (zfs.buffers).
        self._buffers = BufferPool(sender.chunk_size, keep=sender.window_chunks + 8)
        self._chunk: Any = b""
        self._started = 0.0
        self._progress_at: Dict[str, float] = {}
        # The cap counts what leaves this site: each chunk once per target.
        fan_out = len(sender.targets)
        self._paced = Paced(self.actor_ref, spec.bwlimit, sender.chunk_size * fan_out)
        self.receives = {
            wire.Accepted: lambda m: self._from_target(m, self._core.accepted),
            wire.Acked: lambda m: self._from_target(m, self._core.ack_received, m.received),
            wire.Committed: lambda m: self._from_target(m, self._core.done_received),
            wire.Failed: lambda m: self._from_target(m, self._core.failure_received,
                                                     m.failure, m.reason),
            Tick: lambda tick: self.run(self._core.time_passed(tick.now)),
            actors.PeerDown: lambda event: self.run(self._core.target_lost(
                event.name, event.reason, time.monotonic())),
            _OpenFailed: self._open_failed,
            AbortRequested: lambda _: self.run(self._core.source_failed(
                "aborted by the caller", time.monotonic(), Failure.ABORTED)),
            _Begin: self._begin,
            PaceWake: lambda _: self.run(self._paced.woken(self._read)),
        }
        self.carries_out = {
            core.ReadChunk: lambda cmd: self._paced.carry_out(cmd, cmd.length * fan_out,
                                                              self._read),
            core.SendChunk: self._send_chunk,
            core.Progressed: self._progress, core.SendOpen: self._open,
            core.SendEnd: self._end, core.SendAbort: self._abort, core.Finished: self._finish,
        }

    def on_start(self) -> None:
        self.site.watch_peers(self.actor_ref)
        watch_time(self.site, self.name)

    def on_stop(self) -> None:
        if not self._core.finished:
            self.run(self._core.source_failed("the sending site stopped", time.monotonic()))
        self._close()

    def on_failure(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._close()
        if not self._future.done():
            self._future.set_exception(TransferAborted(f"sender crashed: {exc!r}", self.site.name))

    def _close(self) -> None:
        self._paced.stop()
        if isinstance(self._spec.source, ChunkSource):
            self._spec.source.close()

    def on_receive(self, message: Any) -> Any:
        try:
            return super().on_receive(message)
        except Exception as err:  # noqa: BLE001 - fail this send, never hang its caller
            log.exception("push %s failed inside the sender", self._spec.name)
            self.run(self._core.source_failed(f"internal error: {err!r}", time.monotonic()))
            return None

    # -- what arrives

    def _begin(self, _message: _Begin) -> None:
        self._started = time.monotonic()
        self.run(self._core.start(self._started))

    def _from_target(self, message: Any, event: Callable[..., List[Any]], *args: Any) -> None:
        """Hand a target's answer to the core, if it is about our stream."""
        if message.sid == self._spec.sid:
            target = (self.sender or "").partition("/")[0]
            self.run(event(target, *args, time.monotonic()))

    def _open_failed(self, msg: _OpenFailed) -> None:
        now = time.monotonic()
        if msg.no_receiver:
            self.run(self._core.refused(msg.target, "no receiver on this site", now))
        else:
            self.run(self._core.target_lost(msg.target, msg.reason, now))

    # -- what the core asks for

    def _open(self, cmd: core.SendOpen) -> List[Any]:
        """Open the stream at every target by an ask, so that a site with no receiver
        at all fails the send at once; its answer comes as a tell (accepted or failed)."""
        spec, now = self._spec, time.monotonic()
        body = wire.encode(wire.Open(spec.sid, spec.name, cmd.size, cmd.chunk_size,
                                     self._core.window_chunks, spec.channel, spec.topic,
                                     spec.context))
        caused: List[Any] = []
        for target in cmd.targets:
            try:
                answer = self.site.ask(f"{target}/{RECEIVER}", body, block=False,
                                       timeout=self._core.chunk_timeout)
            except actors.CodecError as err:
                return self._core.source_failed(f"cannot encode the message: {err}", now)
            except actors.ActorsError as err:
                caused += self._core.target_lost(target, f"cannot reach: {err}", now)
                continue
            answer.add_done_callback(lambda f, t=target: self._open_answered(t, f))
        return caused

    def _open_answered(self, target: str, answer: Future[Any]) -> None:
        """(Any thread.) Tell ourselves if the open could not be delivered."""
        error = answer.exception()
        if error is None or isinstance(error, actors.AskTimeout):
            return              # accepted/failed come by tell; a silence is chunk_timeout's
        try:
            self.actor_ref.tell(_OpenFailed(target, isinstance(error, actors.UnknownActor),
                                            str(error)))
        except Exception:  # noqa: BLE001 - we stopped meanwhile: nothing left to fail
            pass

    def _read(self, cmd: core.ReadChunk) -> List[Any]:
        if self._core.finished:
            return []
        source, now = self._spec.source, time.monotonic()
        try:
            if isinstance(source, ChunkSource):
                data: Any = source.read_into(cmd.offset, cmd.length, self._buffers)
            else:
                data = read_stream(source, cmd.length)
        except (OSError, ValueError) as err:
            return self._core.source_failed(f"cannot read the source: {err}", now)
        self._digest.update(data)
        self._chunk = data
        return self._core.chunk_read(cmd.offset, len(data), now)

    def _send_chunk(self, cmd: core.SendChunk) -> List[Any]:
        chunk, self._chunk = self._chunk, b""
        return self._send(cmd.targets, wire.Chunk(self._spec.sid, cmd.offset), (chunk,))

    def _end(self, cmd: core.SendEnd) -> List[Any]:
        if isinstance(self._spec.source, ChunkSource):
            try:
                self._spec.source.check_unchanged()
            except TransferAborted as err:
                return self._core.source_failed(str(err), time.monotonic(), Failure.CHANGED)
        end = wire.End(self._spec.sid, cmd.size, self._digest.hexdigest())
        return self._send(cmd.targets, end, ())

    def _abort(self, cmd: core.SendAbort) -> None:
        self._send(cmd.targets, wire.Abort(self._spec.sid, cmd.reason), ())

    def _send(self, targets: Sequence[str], message: wire.Message, payload: Any) -> List[Any]:
        body, now = wire.encode(message), time.monotonic()
        caused: List[Any] = []
        for target in targets:
            try:
                self.site.tell(f"{target}/{RECEIVER}", body, payload=payload)
            except actors.CodecError as err:
                return self._core.source_failed(f"cannot encode the message: {err}", now)
            except actors.ActorsError as err:
                if not isinstance(message, wire.Abort):
                    caused += self._core.target_lost(target, f"cannot reach: {err}", now)
        return caused

    def _progress(self, cmd: core.Progressed) -> None:
        callback, now, total = self._spec.on_progress, time.monotonic(), self._core.size
        if callback is None or (now - self._progress_at.get(cmd.target, -1.0) < PROGRESS_INTERVAL
                                and cmd.bytes_done != total):
            return
        self._progress_at[cmd.target] = now
        run_callback(callback, Progress(self._spec.name, cmd.bytes_done, total, cmd.target))

    def _finish(self, cmd: core.Finished) -> None:
        if not self._future.done():
            if cmd.ok:
                self._future.set_result(PushResult(
                    self._spec.name, self._core.sent_end, self._digest.hexdigest(),
                    list(self._core.targets), time.monotonic() - self._started,
                    route="star", sender_bytes=self._core.sent_end * len(self._core.targets)))
            else:
                assert cmd.failure is not None
                self._future.set_exception(failure_error(
                    cmd.failure, cmd.reason, cmd.culprit or self.site.name))
        if self.actor_ref.is_alive():
            self.actor_ref.stop(block=False)


def push_file_async(site: actors.Site, targets: Union[str, Sequence[str]], source: Source, *,
                    channel: str = "default", topic: str = "default",
                    name: Optional[str] = None, context: Any = None,
                    chunk_size: int = 1 << 20, window_chunks: int = 8,
                    chunk_timeout: float = 30.0,
                    on_progress: Optional[Callable[[Progress], Any]] = None,
                    secure: bool = False,
                    bwlimit: Optional[float] = None,
                    swarm: Optional[bool] = None, fanout: int = 0) -> Transfer[PushResult]:
    """Start pushing ``source`` to ``targets``; the handle gives the outcome, or aborts it.

    Args:
        site: the sending :class:`actors.Site`.
        targets: site names (one name or a list); every one must commit the file.
        source: a path, or a readable binary stream (then ``name`` is required).
        context: app data (msgpack-able) handed to the receivers' ``on_done``.
        on_progress: called with :class:`Progress` per target, at most ~10 times a second,
            from the sender actor's thread.
        bwlimit: bytes per second this push may send, all targets together (each chunk
            counts once per target); None: as fast as the targets take it.
        swarm: pipeline the file through the targets (each chunk leaves this site once;
            see :mod:`zfs.swarm`), True, or send every chunk to every target, False;
            None: the swarm from :data:`~zfs.swarm.sender.SWARM_FROM` targets on. A
            swarm push of a stream, with ``bwlimit`` or ``secure``, or to targets that
            cannot reach each other goes the star way; ``PushResult.route`` says which.
        fanout: children per target in the swarm's trees (0: the library's choice).

    Returns:
        A :class:`~zfs.shell.Transfer` (a future) of :class:`PushResult`; on failure it
        raises :class:`TransferAborted` (or :class:`StreamRefused` /
        :class:`IntegrityError` / :class:`FileChanged`) naming the culprit site.
        ``abort()`` on it aborts the push at every target.

    Raises:
        SourceMissing: the path cannot be opened (nothing was sent).
        UnsafeName: ``name`` is not a plain file name.
        InsecureLink: ``secure=True`` but the site's links are not encrypted.
        ValueError: no targets, repeated targets, bad sizes, or a ``bwlimit`` not above 0.
    """
    targets = [targets] if isinstance(targets, str) else list(targets)
    check_rate(bwlimit)
    check_secure(site, secure)
    if chunk_size > site.options.max_message_size:
        raise ValueError(f"chunk_size {chunk_size} is over the site's max_message_size")
    name, opened, size = open_source(source, name)
    if wants_swarm(swarm, targets, opened, bwlimit, secure):
        assert isinstance(opened, ChunkSource)
        return _swarm(site, targets, source, opened, name, fanout, channel=channel,
                      topic=topic, context=context, chunk_size=chunk_size,
                      window_chunks=window_chunks, chunk_timeout=chunk_timeout,
                      on_progress=on_progress)
    try:
        sender = core.PushSender(targets, chunk_size=chunk_size, window_chunks=window_chunks,
                                 chunk_timeout=chunk_timeout, size=size)
    except LocalProtocolError as err:
        if isinstance(opened, ChunkSource):
            opened.close()
        raise ValueError(str(err)) from None
    sid = secrets.token_hex(16)
    spec = _SendSpec(sid, name, channel, topic, context, opened, on_progress, bwlimit)
    ensure_supervisor(site)
    transfer: Transfer[PushResult] = Transfer()
    return transfer.start(site, SenderActor, f"zfs.send.{sid[:16]}", (spec, sender), _Begin())


def _swarm(site: actors.Site, targets: List[str], source: Source, opened: ChunkSource,
           name: str, fanout: int, **options: Any) -> Transfer[PushResult]:
    """Start a swarm push; its fallback is this module's star push of the same path."""
    def star(_why: str) -> Transfer[PushResult]:
        return push_file_async(site, targets, source, name=name, swarm=False, **options)
    try:
        spec = SwarmSpec(secrets.token_hex(16), name, options["channel"], options["topic"],
                         options["context"], opened, targets, plan(targets, fanout),
                         options["on_progress"], star)
        return swarm_push_async(site, spec, chunk_size=options["chunk_size"],
                                window_chunks=options["window_chunks"],
                                chunk_timeout=options["chunk_timeout"])
    except LocalProtocolError as err:
        opened.close()
        raise ValueError(str(err)) from None


def push_file(site: actors.Site, targets: Union[str, Sequence[str]], source: Source, *,
              channel: str = "default", topic: str = "default", name: Optional[str] = None,
              context: Any = None, chunk_size: int = 1 << 20, window_chunks: int = 8,
              chunk_timeout: float = 30.0,
              on_progress: Optional[Callable[[Progress], Any]] = None,
              secure: bool = False, bwlimit: Optional[float] = None,
              swarm: Optional[bool] = None, fanout: int = 0) -> PushResult:
    """Push ``source`` to ``targets`` and wait until every one committed it.

    Same arguments and errors as :func:`push_file_async`; a failure raises
    :class:`TransferAborted` (or a subclass) naming the culprit site. Do not call it
    from an actor's thread: it blocks.
    """
    return push_file_async(
        site, targets, source, channel=channel, topic=topic, name=name, context=context,
        chunk_size=chunk_size, window_chunks=window_chunks, chunk_timeout=chunk_timeout,
        on_progress=on_progress, secure=secure, bwlimit=bwlimit, swarm=swarm,
        fanout=fanout).result()
