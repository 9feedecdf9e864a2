"""The sending side of a push: :func:`push_file` and the actor that streams one file.

:class:`SenderActor` (``"zfs.send.<hex>"``, one per send) is a thin shell around
:class:`zfs.protocol.push_sender.PushSender`. It reads each chunk once and tells it to
every target as one raw payload frame (the same bytes object to each), computing the
digest as it reads; a window of un-acked chunks bounds its memory.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Deque, Dict, List, Optional, Sequence, Union

import actors
from zfs.errors import InsecureLink, IntegrityError, StreamRefused, TransferAborted, ZfsError
from zfs.files import ChunkSource, Digest
from zfs.protocol import push_sender as core
from zfs.protocol.push_failures import INTEGRITY, REFUSED, ProtocolMisuse
from zfs.callbacks import run_callback
from zfs.push_common import RECEIVER, Progress, PushResult
from zfs.push_source import Source, open_source, read_stream
from zfs.supervisor import Tick, ensure_supervisor, watch_time

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.1      # seconds between two on_progress calls for one target


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
                data = read_stream(source, cmd.length)
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
        run_callback(callback, Progress(self._spec.name, cmd.bytes_done, total, cmd.target))

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


def _error(cmd: core.Finished, own_site: str) -> TransferAborted:
    site = cmd.culprit or own_site
    reason = f"{cmd.kind}: {cmd.reason}"
    if cmd.kind == REFUSED:
        return StreamRefused(reason, site)
    if cmd.kind == INTEGRITY:
        return IntegrityError(reason, site)
    return TransferAborted(reason, site)


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
    if secure and not site.is_secure:
        raise InsecureLink(f"site {site.name} has no encrypted links (no curve option)")
    if chunk_size > site.options.max_message_size:
        raise ValueError(f"chunk_size {chunk_size} is over the site's max_message_size")
    name, opened, size = open_source(source, name)
    try:
        sender = core.PushSender(targets, chunk_size=chunk_size, window_chunks=window_chunks,
                                 chunk_timeout=chunk_timeout, size=size)
    except ProtocolMisuse as err:
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

