"""Push: stream one file to one or more sites in lock-step.

Two thin actor shells around the cores of :mod:`zfs.protocol.push`:

- :class:`SenderActor` (``"zfs.send.<hex>"``, one per send) reads each chunk once and
  tells it to every target as one raw payload frame (the same bytes object to each),
  computing the digest as it reads; a window of un-acked chunks bounds its memory.
- :class:`ReceiverActor` (``"zfs.receiver"``, one per site) holds every inbound stream,
  keyed by (sender address, stream id), writes chunks into a
  :class:`~zfs.files.PartialFile`, acks each by a tiny tell, checks and renames at the end.

Wire messages are small msgpack dicts with an ``op`` and the stream id ``sid``: to the
receiver ``open``, ``chunk`` (+ payload), ``end``, ``abort``; back ``accept``,
``refuse``, ``ack``, ``done``, ``error``.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import tempfile
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import (Any, BinaryIO, Callable, Deque, Dict, List, NamedTuple, Optional, Sequence,
                    Tuple, Union)

import actors
from zfs.errors import (InsecureLink, IntegrityError, SourceMissing, StreamRefused,
                        TransferAborted, ZfsError)
from zfs.files import ChunkSource, Digest, PartialFile, check_name
from zfs.protocol import push as core
from zfs.supervisor import NAME as SUPERVISOR
from zfs.supervisor import Tick, UnwatchTime, ensure_supervisor, watch_time

log = logging.getLogger(__name__)

RECEIVER = "zfs.receiver"
PROGRESS_INTERVAL = 0.1      # seconds between two on_progress calls for one target
_OPTIONS = ("inactivity_timeout", "max_size", "max_chunk_size")

Source = Union[str, "os.PathLike[str]", BinaryIO]


class Progress(NamedTuple):
    """How far a push is at ``peer``: ``bytes_done`` of ``total`` (None: unknown yet).

    ``context`` is the stream's context on the receiving side (None on the sender).
    """

    name: str
    bytes_done: int
    total: Optional[int]
    peer: str
    context: Any = None


class ReceivedFile(NamedTuple):
    """A file a push delivered: checked, renamed into place at ``location`` (its full path)."""

    name: str
    location: str
    size: int
    context: Any
    sender_site: str
    channel: str
    topic: str


class PushResult(NamedTuple):
    """A push that every target committed."""

    name: str
    size: int
    digest: str
    targets: List[str]
    seconds: float


# ---- the sender ------------------------------------------------------------------


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


class SenderActor(actors.Actor):
    """Streams one file to its targets, then stops; the outcome resolves ``future``."""

    def __init__(self, spec: _SendSpec, sender: core.PushSender,
                 future: "Future[PushResult]") -> None:
        super().__init__()
        self._spec = spec
        self._core = sender
        self._future = future
        self._digest = Digest()
        self._chunk: Any = b""
        self._started = 0.0
        self._progress_at: Dict[str, float] = {}

    def on_start(self) -> None:
        self.site.watch_peers(self.actor_ref)
        watch_time(self.site, self.name)

    def on_stop(self) -> None:
        if not self._core.finished:
            self._run(self._core.source_failed("the sending site stopped", time.monotonic()))
        self._close()

    def on_failure(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._close()
        if not self._future.done():
            self._future.set_exception(TransferAborted(f"sender crashed: {exc!r}", self.site.name))

    def _close(self) -> None:
        supervisor = self.site.actor(SUPERVISOR)
        if supervisor is not None:
            supervisor.tell(UnwatchTime(self.name))
        if isinstance(self._spec.source, ChunkSource):
            self._spec.source.close()

    def on_receive(self, message: Any) -> Any:
        now = time.monotonic()
        try:
            if isinstance(message, dict):
                self._run(self._on_reply(message, now))
            elif isinstance(message, Tick):
                self._run(self._core.time_passed(message.now))
            elif isinstance(message, actors.PeerDown):
                self._run(self._core.target_lost(message.name, message.reason, now))
            elif isinstance(message, _OpenFailed):
                self._run(self._open_failed(message, now))
            elif isinstance(message, _Begin):
                self._started = now
                self._run(self._core.start(now))
        except Exception as err:  # noqa: BLE001 - fail this send, never hang its caller
            log.exception("push %s failed inside the sender", self._spec.name)
            self._run(self._core.source_failed(f"internal error: {err!r}", now))
        return None

    def _open_failed(self, msg: "_OpenFailed", now: float) -> List[Any]:
        if msg.no_receiver:
            return self._core.refused(msg.target, "no receiver on this site", now)
        return self._core.target_lost(msg.target, msg.reason, now)

    def _on_reply(self, msg: Dict[str, Any], now: float) -> List[Any]:
        target = (self.sender or "").partition("/")[0]
        if msg.get("sid") != self._spec.sid:
            return []
        op, c = msg.get("op"), self._core
        if op == "ack":
            return c.ack_received(target, msg.get("received"), now)
        if op == "accept":
            return c.accepted(target, now)
        if op == "done":
            return c.done_received(target, now)
        if op == "refuse":
            return c.refused(target, str(msg.get("reason")), now)
        if op == "error":
            return c.error_received(target, str(msg.get("kind")), str(msg.get("reason")), now)
        return []

    def _run(self, cmds: List[Any]) -> None:
        """Carry out the core's commands, feeding back what they cause, in order."""
        queue: Deque[Any] = deque(cmds)
        while queue:
            cmd = queue.popleft()
            now = time.monotonic()
            if isinstance(cmd, core.SendChunk):
                queue.extend(self._send(cmd.targets, {"op": "chunk", "offset": cmd.offset},
                                        (self._chunk,), now))
                self._chunk = b""
            elif isinstance(cmd, core.ReadChunk):
                queue.extend(self._read(cmd, now))
            elif isinstance(cmd, core.Progressed):
                self._progress(cmd, now)
            elif isinstance(cmd, core.SendOpen):
                queue.extend(self._open(cmd, now))
            elif isinstance(cmd, core.SendEnd):
                queue.extend(self._end(cmd, now))
            elif isinstance(cmd, core.SendAbort):
                self._send(cmd.targets, {"op": "abort", "reason": cmd.reason}, (), now)
            elif isinstance(cmd, core.Finished):
                self._finish(cmd, now)

    def _open(self, cmd: core.SendOpen, now: float) -> List[Any]:
        """Open the stream at every target by an ask, so that a site with no receiver
        at all fails the send at once; its answer comes as a tell (accept or refuse)."""
        spec = self._spec
        msg = {"op": "open", "sid": spec.sid, "name": spec.name, "size": cmd.size,
               "chunk_size": cmd.chunk_size, "channel": spec.channel, "topic": spec.topic,
               "context": spec.context}
        caused: List[Any] = []
        for target in cmd.targets:
            try:
                answer = self.site.ask(f"{target}/{RECEIVER}", msg, block=False,
                                       timeout=self._core.chunk_timeout)
            except actors.CodecError as err:
                return self._core.source_failed(f"cannot encode the message: {err}", now)
            except actors.ActorsError as err:
                caused += self._core.target_lost(target, f"cannot reach: {err}", now)
                continue
            answer.add_done_callback(lambda f, t=target: self._open_answered(t, f))
        return caused

    def _open_answered(self, target: str, answer: "Future[Any]") -> None:
        """(Any thread.) Tell ourselves if the open could not be delivered."""
        error = answer.exception()
        if error is None or isinstance(error, actors.AskTimeout):
            return              # accept/refuse come by tell; a silence is chunk_timeout's
        try:
            self.actor_ref.tell(_OpenFailed(target, isinstance(error, actors.UnknownActor),
                                            str(error)))
        except Exception:  # noqa: BLE001 - we stopped meanwhile: nothing left to fail
            pass

    def _send(self, targets: Sequence[str], msg: Dict[str, Any], payload: Any,
              now: float) -> List[Any]:
        msg["sid"] = self._spec.sid
        caused: List[Any] = []
        for target in targets:
            try:
                self.site.tell(f"{target}/{RECEIVER}", msg, payload=payload)
            except actors.CodecError as err:
                return self._core.source_failed(f"cannot encode the message: {err}", now)
            except actors.ActorsError as err:
                if msg["op"] != "abort":
                    caused += self._core.target_lost(target, f"cannot reach: {err}", now)
        return caused

    def _read(self, cmd: core.ReadChunk, now: float) -> List[Any]:
        source = self._spec.source
        try:
            if isinstance(source, ChunkSource):
                data: Any = source.read(cmd.offset, cmd.length)
            else:
                data = _read_stream(source, cmd.length)
        except (OSError, ValueError) as err:
            return self._core.source_failed(f"cannot read the source: {err}", now)
        self._digest.update(data)
        self._chunk = data
        return self._core.chunk_read(cmd.offset, len(data), now)

    def _end(self, cmd: core.SendEnd, now: float) -> List[Any]:
        if isinstance(self._spec.source, ChunkSource):
            try:
                self._spec.source.check_unchanged()
            except ZfsError as err:
                return self._core.source_failed(str(err), now)
        end = {"op": "end", "size": cmd.size, "digest": self._digest.hexdigest()}
        return self._send(cmd.targets, end, (), now)

    def _progress(self, cmd: core.Progressed, now: float) -> None:
        callback = self._spec.on_progress
        total = self._core.size
        if callback is None or (now - self._progress_at.get(cmd.target, -1.0) < PROGRESS_INTERVAL
                                and cmd.bytes_done != total):
            return
        self._progress_at[cmd.target] = now
        _call(callback, Progress(self._spec.name, cmd.bytes_done, total, cmd.target))

    def _finish(self, cmd: core.Finished, now: float) -> None:
        if not self._future.done():
            if cmd.ok:
                self._future.set_result(PushResult(
                    self._spec.name, self._core.sent_end, self._digest.hexdigest(),
                    list(self._core.targets), now - self._started))
            else:
                self._future.set_exception(_error(cmd, self.site.name))
        if self.actor_ref.is_alive():
            self.actor_ref.stop(block=False)


def _read_stream(stream: BinaryIO, length: int) -> memoryview:
    """Read up to ``length`` bytes into a fresh buffer (fewer only at the end)."""
    buf = bytearray(length)
    view = memoryview(buf)
    got = 0
    while got < length:
        n = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return view[:got]


def _error(cmd: core.Finished, own_site: str) -> TransferAborted:
    site = cmd.culprit or own_site
    reason = f"{cmd.kind}: {cmd.reason}"
    if cmd.kind == core.REFUSED:
        return StreamRefused(reason, site)
    if cmd.kind == core.INTEGRITY:
        return IntegrityError(reason, site)
    return TransferAborted(reason, site)


def _call(callback: Callable[..., Any], *args: Any) -> None:
    """Run an app callback; its errors are logged, never allowed to break a transfer."""
    try:
        callback(*args)
    except Exception:  # noqa: BLE001 - app code must not kill the actor
        log.exception("callback %r failed", callback)


def _open_source(source: Source, name: Optional[str]
                 ) -> Tuple[str, Union[ChunkSource, BinaryIO], Optional[int]]:
    """Check the name and open the source: (name, source to read, size or None)."""
    if isinstance(source, (str, os.PathLike)):
        name = check_name(name if name is not None else os.path.basename(os.fspath(source)))
        chunks = ChunkSource(source)
        return name, chunks, chunks.size
    if isinstance(source, io.IOBase) or hasattr(source, "readinto"):
        if name is None:
            raise ValueError("a stream source needs a name")
        return check_name(name), source, None
    raise SourceMissing(f"not a path or a readable stream: {source!r}")


def push_file_async(site: Any, targets: Union[str, Sequence[str]], source: Source, *,
                    channel: str = "default", topic: str = "default",
                    name: Optional[str] = None, context: Any = None,
                    chunk_size: int = 1 << 20, window_chunks: int = 8,
                    chunk_timeout: float = 30.0,
                    on_progress: Optional[Callable[[Progress], Any]] = None,
                    secure: bool = False) -> "Future[PushResult]":
    """Start pushing ``source`` to ``targets``; the future gives the outcome.

    Args:
        site: the sending :class:`actors.Site`.
        targets: site names (one name or a list); every one must commit the file.
        source: a path, or a readable binary stream (then ``name`` is required).
        context: app data (msgpack-able) handed to the receivers' ``on_done``.
        on_progress: called with :class:`Progress` per target, at most ~10 times a second,
            from the sender actor's thread.

    Returns:
        A future of :class:`PushResult`; on failure it raises :class:`TransferAborted`
        (or :class:`StreamRefused` / :class:`IntegrityError`) naming the culprit site.

    Raises:
        SourceMissing: the path cannot be opened (nothing was sent).
        UnsafeName: ``name`` is not a plain file name.
        InsecureLink: ``secure=True`` but the site's links are not encrypted.
        ValueError: no targets, repeated targets, or bad sizes.
    """
    targets = [targets] if isinstance(targets, str) else list(targets)
    if secure and getattr(site.options, "curve", None) is None:
        raise InsecureLink(f"site {site.name} has no encrypted links (no curve option)")
    if chunk_size > site.options.max_message_size:
        raise ValueError(f"chunk_size {chunk_size} is over the site's max_message_size")
    name, opened, size = _open_source(source, name)
    try:
        sender = core.PushSender(targets, chunk_size=chunk_size, window_chunks=window_chunks,
                                 chunk_timeout=chunk_timeout, size=size)
    except core.ProtocolMisuse as err:
        if isinstance(opened, ChunkSource):
            opened.close()
        raise ValueError(str(err)) from None
    sid = secrets.token_hex(16)
    spec = _SendSpec(sid, name, channel, topic, context, opened, on_progress)
    future: "Future[PushResult]" = Future()
    ensure_supervisor(site)
    ref = site.spawn(SenderActor, f"zfs.send.{sid[:16]}", spec, sender, future)
    ref.tell(_Begin())
    return future


def push_file(site: Any, targets: Union[str, Sequence[str]], source: Source, *,
              channel: str = "default", topic: str = "default", name: Optional[str] = None,
              context: Any = None, chunk_size: int = 1 << 20, window_chunks: int = 8,
              chunk_timeout: float = 30.0,
              on_progress: Optional[Callable[[Progress], Any]] = None,
              secure: bool = False) -> PushResult:
    """Push ``source`` to ``targets`` and wait until every one committed it.

    Same arguments and errors as :func:`push_file_async`; a failure raises
    :class:`TransferAborted` (or a subclass) naming the culprit site. Do not call it
    from an actor's thread: it blocks.
    """
    return push_file_async(
        site, targets, source, channel=channel, topic=topic, name=name, context=context,
        chunk_size=chunk_size, window_chunks=window_chunks, chunk_timeout=chunk_timeout,
        on_progress=on_progress, secure=secure).result()


# ---- the receiver ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Registration:
    channel: str
    topic: str
    dest_dir: str
    on_done: Optional[Callable[[ReceivedFile], Any]]
    on_chunk: Optional[Callable[[Progress], Any]]
    limits: core.Limits


@dataclass(frozen=True, slots=True)
class _Unregister:
    channel: str
    topic: str


@dataclass(slots=True)
class _Inbound:
    partial: PartialFile
    registration: _Registration
    context: Any
    sender_site: str


class ReceiverActor(actors.Actor):
    """Every inbound push of this site: writes, acks, checks, renames, calls back.

    Args:
        max_streams: inbound streams open at once; more are refused.
    """

    def __init__(self, max_streams: int = 256) -> None:
        super().__init__()
        self._core = core.PushReceiver(max_streams)
        self._registrations: Dict[Any, _Registration] = {}
        self._files: Dict[core.Key, _Inbound] = {}

    def on_start(self) -> None:
        self.site.watch_peers(self.actor_ref)
        watch_time(self.site, self.name)

    def on_stop(self) -> None:
        for inbound in self._files.values():
            inbound.partial.discard()
        self._files.clear()

    def on_receive(self, message: Any) -> Any:
        now = time.monotonic()
        if isinstance(message, dict):
            sid = message.get("sid")
            if self.sender and "/" in self.sender and isinstance(sid, str):
                self._on_stream(message, (self.sender, sid), now)
        elif isinstance(message, Tick):
            self._run(self._core.time_passed(message.now), None)
        elif isinstance(message, actors.PeerDown):
            self._run(self._core.site_lost(message.name, now), None)
        elif isinstance(message, _Registration):
            self._registrations[(message.channel, message.topic)] = message
            self._core.registration_added(message.channel, message.topic, message.limits)
        elif isinstance(message, _Unregister):
            self._registrations.pop((message.channel, message.topic), None)
            self._core.registration_removed(message.channel, message.topic)
        return None

    def _on_stream(self, msg: Dict[str, Any], key: core.Key, now: float) -> None:
        op, c = msg.get("op"), self._core
        if op == "chunk":
            payload = self.payload
            length = len(payload[0]) if len(payload) == 1 else 0
            self._run(c.chunk_received(key, msg.get("offset"), length, now), msg)
        elif op == "open":
            self._run(c.open_received(key, msg.get("name"), msg.get("size"),
                                      msg.get("chunk_size"), msg.get("channel"),
                                      msg.get("topic"), now), msg)
        elif op == "end":
            self._run(c.end_received(key, msg.get("size"), msg.get("digest"), now), msg)
        elif op == "abort":
            self._run(c.abort_received(key, str(msg.get("reason")), now), msg)

    def _run(self, cmds: List[Any], msg: Optional[Dict[str, Any]]) -> None:
        """Carry out the core's commands, feeding back what they cause, in order."""
        queue: Deque[Any] = deque(cmds)
        while queue:
            cmd = queue.popleft()
            now = time.monotonic()
            if isinstance(cmd, core.WriteChunk):
                queue.extend(self._write(cmd, now))
            elif isinstance(cmd, core.SendAck):
                self._reply(cmd.key, {"op": "ack", "received": cmd.received})
                self._chunk_done(cmd)
            elif isinstance(cmd, core.CreateFile):
                queue.extend(self._create(cmd, msg or {}, now))
            elif isinstance(cmd, core.CommitFile):
                queue.extend(self._commit(cmd, now))
            elif isinstance(cmd, core.Accept):
                self._reply(cmd.key, {"op": "accept"})
            elif isinstance(cmd, core.Refuse):
                log.info("push %s refused: %s", cmd.key, cmd.reason)
                self._reply(cmd.key, {"op": "refuse", "reason": cmd.reason})
            elif isinstance(cmd, core.SendDone):
                self._reply(cmd.key, {"op": "done"})
            elif isinstance(cmd, core.SendError):
                self._reply(cmd.key, {"op": "error", "kind": cmd.kind, "reason": cmd.reason})
            elif isinstance(cmd, core.Discard):
                inbound = self._files.pop(cmd.key, None)
                if inbound is not None:
                    log.info("push %s discarded: %s", cmd.key, cmd.reason)
                    inbound.partial.discard()

    def _reply(self, key: core.Key, msg: Dict[str, Any]) -> None:
        msg["sid"] = key[1]
        try:
            self.site.tell(key[0], msg)
        except actors.ActorsError as err:
            log.debug("push reply %s to %s not sent: %s", msg["op"], key[0], err)

    def _create(self, cmd: core.CreateFile, msg: Dict[str, Any], now: float) -> List[Any]:
        reg = self._registrations[cmd.registration]
        try:
            partial = PartialFile(reg.dest_dir, cmd.name)
        except (OSError, ZfsError) as err:
            return self._core.io_failed(cmd.key, f"cannot create the file: {err}", now)
        sender_site = cmd.key[0].partition("/")[0]
        self._files[cmd.key] = _Inbound(partial, reg, msg.get("context"), sender_site)
        return self._core.file_created(cmd.key, now)

    def _write(self, cmd: core.WriteChunk, now: float) -> List[Any]:
        data = self.payload[0]
        try:
            self._files[cmd.key].partial.write_at(cmd.offset, data)
        except OSError as err:
            return self._core.io_failed(cmd.key, f"cannot write: {err}", now)
        return self._core.chunk_written(cmd.key, cmd.offset, len(data), now)

    def _chunk_done(self, cmd: core.SendAck) -> None:
        inbound = self._files[cmd.key]
        if inbound.registration.on_chunk is not None:
            _call(inbound.registration.on_chunk, Progress(
                inbound.partial.name, cmd.received, cmd.size, inbound.sender_site,
                inbound.context))

    def _commit(self, cmd: core.CommitFile, now: float) -> List[Any]:
        inbound = self._files[cmd.key]
        try:
            location = inbound.partial.commit(cmd.size, cmd.digest)
        except IntegrityError as err:
            return self._core.commit_failed(cmd.key, err.reason, now)
        except OSError as err:
            return self._core.io_failed(cmd.key, f"cannot commit: {err}", now)
        del self._files[cmd.key]
        reg = inbound.registration
        if reg.on_done is not None:
            _call(reg.on_done, ReceivedFile(inbound.partial.name, location, cmd.size,
                                            inbound.context, inbound.sender_site,
                                            reg.channel, reg.topic))
        return self._core.committed(cmd.key, now)


def _receiver(site: Any) -> Any:
    """The site's receiver actor, spawned on first use (safe if two threads race)."""
    ref = site.actor(RECEIVER)
    if ref is not None:
        return ref
    try:
        return site.spawn(ReceiverActor, RECEIVER)
    except ValueError:
        ref = site.actor(RECEIVER)
        if ref is None:
            raise
        return ref


def register_receiver(site: Any, channel: str = "default", topic: str = "default",
                      dest_dir: Optional[str] = None,
                      on_done: Optional[Callable[[ReceivedFile], Any]] = None,
                      on_chunk: Optional[Callable[[Progress], Any]] = None,
                      **options: Any) -> None:
    """Accept pushes for (channel, topic) into ``dest_dir`` from now on.

    Registering the same (channel, topic) again replaces the earlier registration.
    Callbacks run in the receiver actor's thread; their exceptions are logged.

    Args:
        dest_dir: where received files go (default: the system temp folder).
        on_done: called with a :class:`ReceivedFile` once a file is checked and in place.
        on_chunk: called with a :class:`Progress` after each chunk is written.
        **options: ``inactivity_timeout`` (seconds, default 60) after which a silent
            stream is dropped, ``max_size`` and ``max_chunk_size`` (bytes) accepted.

    Raises:
        NotADirectoryError: ``dest_dir`` is not an existing folder.
        TypeError: an unknown option.
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise TypeError(f"unknown receiver options: {', '.join(unknown)}")
    dest = os.path.abspath(dest_dir if dest_dir is not None else tempfile.gettempdir())
    if not os.path.isdir(dest):
        raise NotADirectoryError(f"not a folder: {dest!r}")
    limits = core.Limits(**options)
    _receiver(site).tell(_Registration(channel, topic, dest, on_done, on_chunk, limits))


def unregister_receiver(site: Any, channel: str = "default", topic: str = "default") -> None:
    """Refuse new pushes for (channel, topic); streams in progress finish."""
    ref = site.actor(RECEIVER)
    if ref is not None:
        ref.tell(_Unregister(channel, topic))
