"""The sending side of a swarm push: the actor that streams one file down the plan's trees.

:class:`SwarmSenderActor` (``"zfs.swarmsend.<hex>"``, one per push) first asks every
target's relay (:data:`~zfs.swarm.relay.RELAY`) where it listens, so that each parent
can link to its children. If a target has no relay or listens nowhere, or if a relay
later cannot reach a child, the push goes the star way instead (``fallback``, given by
the caller: the plain push of :mod:`zfs.push.sender`) and the result says so. Otherwise
it drives :class:`zfs.protocol.swarm.sender.SwarmSender`: each chunk is read once and
sent once, to the root of its stripe; the roots answer for their trees.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import actors
from zfs.buffers import BufferPool
from zfs.errors import TransferAborted
from zfs.files import ChunkSource, Digest
from zfs.protocol.errors import Failure, RemoteProtocolError
from zfs.protocol.swarm import codec
from zfs.protocol.swarm import sender as core
from zfs.protocol.swarm import wire
from zfs.protocol.swarm.plan import Plan
from zfs.results import Progress, PushResult
from zfs.shell import AbortRequested, Shell, Transfer, failure_error, run_callback
from zfs.supervisor import Tick, ensure_supervisor, watch_time
from zfs.swarm.relay import RELAY

log = logging.getLogger(__name__)

#: From this many targets a push goes the swarm way unless told not to: below it the
#: star's N copies cost little, and a pipeline's fixed costs (the probe, one more hop
#: per target) are a larger share.
SWARM_FROM = 4
PROGRESS_INTERVAL = 0.1      # seconds between two rounds of on_progress calls
#: A swarm failure named by its kind, as a plain push's Failure (to raise the same errors).
_FAILURES = {wire.SOURCE: Failure.LOCAL, wire.UNREACHABLE: Failure.LOST}


@dataclass(frozen=True, slots=True)
class Begin:
    """Told once after spawn: ask the targets where they listen."""


@dataclass(frozen=True, slots=True)
class _Probed:
    """A target's answer to the probe: its endpoint, or why it cannot take part."""

    target: str
    endpoint: str
    problem: str


@dataclass(frozen=True, slots=True)
class _StarEnded:
    """The star push we fell back to ended (its future holds the outcome)."""

    future: Future[PushResult]


@dataclass(slots=True)
class SwarmSpec:
    """What one swarm push sends, where, and what to do if the swarm cannot carry it."""

    sid: str
    name: str
    channel: str
    topic: str
    context: Any
    source: ChunkSource
    targets: list[str]
    plan: Plan
    on_progress: Optional[Callable[[Progress], Any]]
    fallback: Callable[[str], Transfer[PushResult]]
    probe_timeout: float = 10.0


class SwarmSenderActor(Shell):
    """Streams one file down the swarm (or falls back to the star), then stops."""

    def __init__(self, spec: SwarmSpec, sender: core.SwarmSender,
                 future: Future[PushResult]) -> None:
        super().__init__()
        self._spec = spec
        self._core = sender
        self._future = future
        self._digest = Digest()
        self._buffers = BufferPool(sender.chunk_size, keep=sender.window_chunks + 8)
        self._chunk: Any = b""
        self._started = 0.0
        self._progress_at = -1.0
        self._endpoints: dict[str, str] = {}
        self._local = Failure.LOCAL               # what our side's failure is, if it fails
        self._star: Optional[Transfer[PushResult]] = None
        self._why = ""                             # why the push went the star way
        self.receives = {
            Begin: self._probe, _Probed: self._probed, _StarEnded: self._star_ended,
            wire.Accept: lambda m: self._from_root(m, lambda r, now: self._core.accepted(
                r, m.stripe, now)),
            wire.Ack: lambda m: self._from_root(m, lambda r, now: self._core.ack_received(
                r, m.stripe, m.count, now)),
            wire.Done: lambda m: self._from_root(m, lambda r, now: self._core.done_received(
                r, m.stripe, now)),
            wire.Failed: lambda m: self._from_root(m, lambda r, now: self._core.failed_received(
                r, m.culprit, m.kind, m.reason, now)),
            Tick: lambda tick: self.run(self._core.time_passed(tick.now)),
            actors.PeerDown: lambda e: self.run(self._core.target_lost(e.name, time.monotonic())),
            AbortRequested: self._abort_requested,
        }
        self.carries_out = {
            core.ReadChunk: self._read, wire.Send: self._send, core.SendEnd: self._end,
            core.Progressed: self._progress, core.Finished: self._finish,
        }

    def on_start(self) -> None:
        self.site.watch_peers(self.actor_ref)
        watch_time(self.site, self.name)

    def on_stop(self) -> None:
        if self._star is not None:
            self._star.abort()
        elif self._started and not self._core.finished:
            self.run(self._core.source_failed("the sending site stopped", time.monotonic()))
        self._spec.source.close()
        if not self._future.done():
            self._future.set_exception(TransferAborted("the sending site stopped",
                                                       self.site.name))

    def on_failure(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._spec.source.close()
        if not self._future.done():
            self._future.set_exception(TransferAborted(f"sender crashed: {exc!r}", self.site.name))

    def on_receive(self, message: Any) -> Any:
        if type(message) is list:
            try:
                message = codec.decode(message)
            except RemoteProtocolError as err:
                log.warning("swarm push %s: bad message from %s: %s", self._spec.name,
                            self.sender, err)
                return None
        try:
            return super().on_receive(message)
        except Exception as err:  # noqa: BLE001 - fail this push, never hang its caller
            log.exception("swarm push %s failed inside the sender", self._spec.name)
            self.run(self._core.source_failed(f"internal error: {err!r}", time.monotonic()))
            return None

    # -- the probe, and the fallback

    def _probe(self, _message: Begin) -> None:
        body = codec.encode(codec.Probe())
        for target in self._spec.targets:
            try:
                answer = self.site.ask(f"{target}/{RELAY}", body, block=False,
                                       timeout=self._spec.probe_timeout)
            except actors.ActorsError as err:
                self.actor_ref.tell(_Probed(target, "", f"{target}: {err}"))
                continue
            answer.add_done_callback(lambda f, t=target: self._answered(t, f))

    def _answered(self, target: str, answer: Future[Any]) -> None:
        """(Any thread.) Tell ourselves what the target said."""
        error = answer.exception()
        value = answer.result() if error is None else None
        if error is not None:
            probed = _Probed(target, "", f"{target} does not relay swarm pushes: {error}")
        elif not isinstance(value, str) or not value.startswith("tcp://"):
            probed = _Probed(target, "", f"{target} listens on no TCP endpoint")
        else:
            probed = _Probed(target, value, "")
        try:
            self.actor_ref.tell(probed)
        except Exception:  # noqa: BLE001 - we stopped meanwhile: nothing left to do
            pass

    def _probed(self, msg: _Probed) -> None:
        if self._future.done() or self._star is not None or self._started:
            return
        if msg.problem:
            self._fall_back(msg.problem)
            return
        self._endpoints[msg.target] = msg.endpoint
        if len(self._endpoints) == len(self._spec.targets):
            self._started = time.monotonic()
            self.run(self._core.start(self._started))

    def _fall_back(self, why: str) -> None:
        """Push the star way (every target from us), the result saying why."""
        log.info("swarm push of %s goes the star way: %s", self._spec.name, why)
        self._why = why
        self._spec.source.close()
        try:
            self._star = self._spec.fallback(why)
        except Exception as err:  # noqa: BLE001 - the caller's errors are the push's
            self._future.set_exception(err)
            self.actor_ref.stop(block=False)
            return
        self._star.add_done_callback(lambda f: self._tell_self(_StarEnded(f)))

    def _tell_self(self, message: Any) -> None:
        try:
            self.actor_ref.tell(message)
        except Exception:  # noqa: BLE001 - we stopped meanwhile: nothing waits on us
            pass

    def _star_ended(self, msg: _StarEnded) -> None:
        error = msg.future.exception()
        if self._future.done():
            pass
        elif error is not None:
            self._future.set_exception(error)
        else:
            self._future.set_result(msg.future.result()._replace(note=self._why))
        self._star = None
        self.actor_ref.stop(block=False)

    def _abort_requested(self, _message: AbortRequested) -> None:
        if self._star is not None:
            self._star.abort()
            return
        self._local = Failure.ABORTED
        if not self._started:
            self._future.set_exception(TransferAborted("aborted by the caller", self.site.name))
            self.actor_ref.stop(block=False)
            return
        self.run(self._core.source_failed("aborted by the caller", time.monotonic()))

    # -- the swarm push

    def _from_root(self, msg: Any, event: Callable[[str, float], list[Any]]) -> None:
        if self._started and getattr(msg, "stream", None) == self._spec.sid:
            self.run(event((self.sender or "").partition("/")[0], time.monotonic()))

    def _read(self, cmd: core.ReadChunk) -> list[Any]:
        now = time.monotonic()
        try:
            data = self._spec.source.read_into(cmd.offset, cmd.length, self._buffers)
        except (OSError, ValueError) as err:
            return self._core.source_failed(f"cannot read the source: {err}", now)
        self._digest.update(data)
        self._chunk = data
        return self._core.chunk_read(cmd.index, len(data), now)

    def _send(self, cmd: wire.Send) -> list[Any]:
        message: Any = cmd.message
        payload: tuple[Any, ...] = ()
        if isinstance(message, wire.Open):
            message = codec.Opening(message, tuple(self._endpoints.get(m, "")
                                                   for m in message.members),
                                    self.site.name, self._spec.context)
        elif isinstance(message, wire.Chunk):
            payload, self._chunk = (self._chunk,), b""
        return self._tell_roots(cmd.to, message, payload)

    def _tell_roots(self, roots: tuple[str, ...], message: Any,
                    payload: tuple[Any, ...]) -> list[Any]:
        body, caused = codec.encode(message), []
        for root in roots:
            try:
                self.site.tell(f"{root}/{RELAY}", body, payload=payload)
            except actors.CodecError as err:
                self._local = Failure.LOCAL
                return self._core.source_failed(f"cannot encode the message: {err}",
                                                time.monotonic())
            except actors.ActorsError as err:
                log.info("swarm push %s: %s not reached: %s", self._spec.name, root, err)
                if not isinstance(message, wire.Abort):
                    caused += self._core.target_lost(root, time.monotonic())
        return caused

    def _end(self, cmd: core.SendEnd) -> list[Any]:
        try:
            self._spec.source.check_unchanged()
        except TransferAborted as err:
            self._local = Failure.CHANGED
            return self._core.source_failed(str(err), time.monotonic())
        end = wire.End(self._spec.sid, cmd.size, self._digest.hexdigest())
        return self._tell_roots(cmd.to, end, ())

    def _progress(self, cmd: core.Progressed) -> None:
        callback, now, total = self._spec.on_progress, time.monotonic(), self._core.size
        if callback is None or (now - self._progress_at < PROGRESS_INTERVAL
                                and cmd.bytes_done != total):
            return
        self._progress_at = now
        for target in self._spec.targets:
            run_callback(callback, Progress(self._spec.name, cmd.bytes_done, total, target))

    def _finish(self, cmd: core.Finished) -> None:
        if cmd.kind == wire.UNREACHABLE and not self._future.done():
            self._fall_back(f"{cmd.culprit} cannot be reached by its parent: {cmd.reason}")
            return
        if not self._future.done():
            if cmd.ok:
                self._future.set_result(PushResult(
                    self._spec.name, self._core.size, self._digest.hexdigest(),
                    list(self._spec.targets), time.monotonic() - self._started,
                    route="swarm", sender_bytes=self._core.size))
            else:
                failure = self._local if cmd.culprit is None else _FAILURES.get(
                    cmd.kind, Failure.parse(cmd.kind))
                self._future.set_exception(failure_error(
                    failure, cmd.reason, cmd.culprit or self.site.name))
        self.actor_ref.stop(block=False)


def swarm_window(plan: Plan, window_chunks: int) -> int:
    """Chunks in flight for a swarm push: enough to cover a chunk's trip down the deepest
    tree and its ack's trip back (see :mod:`zfs.protocol.swarm.sender`), at least the
    caller's."""
    return max(window_chunks, 2 * plan.fanout * plan.depth + 4)


def swarm_push_async(site: actors.Site, spec: SwarmSpec, *, chunk_size: int,
                     window_chunks: int, chunk_timeout: float) -> Transfer[PushResult]:
    """Start a swarm push of ``spec``; the handle gives the outcome, or aborts it.

    The caller opened ``spec.source`` and checked the arguments (as for a plain push);
    ``spec.fallback`` starts the star push if the swarm cannot carry the file.
    """
    sender = core.SwarmSender(spec.plan, stream=spec.sid, name=spec.name, channel=spec.channel,
                              topic=spec.topic, size=spec.source.size, chunk_size=chunk_size,
                              window_chunks=swarm_window(spec.plan, window_chunks),
                              chunk_timeout=chunk_timeout)
    ensure_supervisor(site)
    transfer: Transfer[PushResult] = Transfer()
    return transfer.start(site, SwarmSenderActor, f"zfs.swarmsend.{spec.sid[:16]}",
                          (spec, sender), Begin())


def wants_swarm(swarm: Optional[bool], targets: Sequence[str], source: Any,
                bwlimit: Optional[float], secure: bool) -> bool:
    """Whether a push should try the swarm way: asked for (or by default from
    :data:`SWARM_FROM` targets), and of a file (a swarm needs the size up front), with no
    cap (only the star paces) and over plain links (a relay cannot vouch for keys)."""
    wanted = len(targets) >= SWARM_FROM if swarm is None else swarm
    return wanted and isinstance(source, ChunkSource) and bwlimit is None and not secure
