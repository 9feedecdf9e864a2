"""The sending side of a tree push: the actor that streams one tree.

:class:`TreeSenderActor` (``"zfs.send-tree.<hex>"``, one per push) drives
:class:`zfs.protocol.push.tree.sender.TreeSender`. It opens the tree at every target
with its manifest, digests what the targets say they hold (on a thread of its own, so an
abort is heard at once), then streams the planned stream: each chunk is read from the
files it covers into one buffer and told to every target as one raw payload frame (the
same bytes object to each), its digest computed as it goes; a window of un-acked chunks
bounds its memory, as for one file.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import actors
from zfs.buffers import BufferPool
from zfs.errors import TransferAborted, ZfsError
from zfs.files import Digest
from zfs.protocol import wire
from zfs.protocol.errors import Failure, RemoteProtocolError
from zfs.protocol.push import sender as stream
from zfs.protocol.push.tree import sender as core
from zfs.protocol.tree.layout import Layout, pack_plan, unpack_offers
from zfs.push.tree.receiver import TREE_RECEIVER
from zfs.results import Progress, TreePushResult
from zfs.shell import AbortRequested, Paced, PaceWake, Shell, failure_error, run_callback
from zfs.supervisor import Tick, watch_time
from zfs.tree.source import TreeSource
from zfs.tree.walk import Walked

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.1      # seconds between two on_progress calls for one target
_PAGE = 1 << 20              # the manifest travels in payload frames of this size


@dataclass(frozen=True, slots=True)
class Begin:
    """Told once after spawn: start (from the actor's thread, as the actor)."""


@dataclass(frozen=True, slots=True)
class _OpenFailed:
    target: str
    no_receiver: bool
    reason: str


@dataclass(frozen=True, slots=True)
class _Checked:
    """Our digests of what the targets offered (from the checking thread)."""

    digests: dict[tuple[int, int], str]
    error: Optional[BaseException] = None


@dataclass(slots=True)
class TreeSpec:
    sid: str
    name: str
    key: str
    channel: str
    topic: str
    context: Any
    walked: Walked
    no_clobber: bool
    check_existing: bool
    on_progress: Optional[Callable[[Progress], Any]]
    bwlimit: Optional[float] = None


class TreeSenderActor(Shell):
    """Streams one tree to its targets, then stops; the outcome resolves ``future``."""

    def __init__(self, spec: TreeSpec, sender: core.TreeSender,
                 future: Future[TreePushResult]) -> None:
        super().__init__()
        self._spec = spec
        self._core = sender
        self._future = future
        self._manifest = spec.walked.manifest
        self._source = TreeSource(spec.walked.root, self._manifest)
        # Chunks are read into buffers used again once ZeroMQ has sent them (zfs.buffers).
        self._buffers = BufferPool(sender.chunk_size, keep=sender.window_chunks + 8)
        self._digest = Digest()
        self._chunk: Any = b""
        self._started = 0.0
        self._held: dict[str, int] = {}
        self._progress_at: dict[str, float] = {}
        self._checker: Optional[ThreadPoolExecutor] = None
        # The cap counts what leaves this site: each chunk once per target.
        fan_out = len(sender.targets)
        self._paced = Paced(self.actor_ref, spec.bwlimit, sender.chunk_size * fan_out)
        self.receives = {
            wire.TreeOffer: self._on_offer,
            wire.Checking: lambda m: self._from_target(m, self._core.checking_received),
            wire.Acked: lambda m: self._from_target(m, self._core.ack_received, m.received),
            wire.Committed: lambda m: self._from_target(m, self._core.done_received),
            wire.Failed: lambda m: self._from_target(m, self._core.failure_received,
                                                     m.failure, m.reason),
            Tick: lambda tick: self.run(self._core.time_passed(tick.now)),
            actors.PeerDown: lambda event: self.run(self._core.target_lost(
                event.name, event.reason, time.monotonic())),
            _OpenFailed: self._open_failed, _Checked: self._checked, Begin: self._begin,
            AbortRequested: lambda _: self.run(self._core.source_failed(
                "aborted by the caller", time.monotonic(), Failure.ABORTED)),
            PaceWake: lambda _: self.run(self._paced.woken(self._read)),
        }
        self.carries_out = {
            core.SendTreeOpen: self._open, core.CheckOffers: self._check,
            core.SendChecking: lambda cmd: self._send(cmd.targets, wire.Checking(
                self._spec.sid), ()),
            core.Planned: self._planned, core.SendPlan: self._send_plan,
            stream.ReadChunk: lambda cmd: self._paced.carry_out(cmd, cmd.length * fan_out,
                                                                self._read),
            stream.SendChunk: self._send_chunk,
            stream.Progressed: self._progress, stream.SendEnd: self._end,
            stream.SendAbort: lambda cmd: self._send(cmd.targets, wire.Abort(
                self._spec.sid, cmd.reason), ()),
            stream.Finished: self._finish,
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
        self._source.close()
        if self._checker is not None:
            self._checker.shutdown(wait=False, cancel_futures=True)

    def on_receive(self, message: Any) -> Any:
        try:
            return super().on_receive(message)
        except Exception as err:  # noqa: BLE001 - fail this send, never hang its caller
            log.exception("push of the tree %s failed inside the sender", self._spec.name)
            self.run(self._core.source_failed(f"internal error: {err!r}", time.monotonic()))
            return None

    # -- what arrives

    def _begin(self, _message: Begin) -> None:
        self._started = time.monotonic()
        self.run(self._core.start(self._started))

    def _target(self) -> str:
        return (self.sender or "").partition("/")[0]

    def _from_target(self, message: Any, event: Callable[..., list[Any]], *args: Any) -> None:
        if message.sid == self._spec.sid:
            self.run(event(self._target(), *args, time.monotonic()))

    def _on_offer(self, message: wire.TreeOffer) -> None:
        if message.sid != self._spec.sid:
            return
        target, now = self._target(), time.monotonic()
        try:
            if len(self.payload) != 1:
                raise RemoteProtocolError("an offer without exactly one payload frame")
            offers = unpack_offers(bytes(self.payload[0]), self._core.sizes)
        except RemoteProtocolError as err:
            self.run(self._core.failure_received(target, Failure.PROTOCOL, str(err), now))
            return
        self.run(self._core.offer_received(target, offers, now))

    def _open_failed(self, msg: _OpenFailed) -> None:
        now = time.monotonic()
        if msg.no_receiver:
            self.run(self._core.failure_received(
                msg.target, Failure.REFUSED, "no tree receiver on this site", now))
        else:
            self.run(self._core.target_lost(msg.target, msg.reason, now))

    def _checked(self, message: _Checked) -> None:
        now = time.monotonic()
        if message.error is not None:
            failure = Failure.CHANGED if isinstance(message.error, ZfsError) else Failure.LOCAL
            self.run(self._core.source_failed(f"cannot check the tree: {message.error}",
                                              now, failure))
            return
        self.run(self._core.offers_checked(message.digests, now))

    # -- what the core asks for

    def _open(self, cmd: core.SendTreeOpen) -> list[Any]:
        """Open the tree at every target by an ask, so that a site without a tree
        receiver fails at once; its answer comes as a tell (offer or failure)."""
        spec, now = self._spec, time.monotonic()
        manifest = self._manifest.encode()
        pages = tuple(manifest[i:i + _PAGE] for i in range(0, len(manifest), _PAGE))
        body = wire.encode(wire.TreeOpen(
            spec.sid, spec.name, spec.key, len(self._manifest.files), self._manifest.size,
            len(manifest), self._core.chunk_size, self._core.window_chunks, spec.channel,
            spec.topic, spec.context, spec.no_clobber, spec.check_existing))
        caused: list[Any] = []
        for target in cmd.targets:
            try:
                answer = self.site.ask(f"{target}/{TREE_RECEIVER}", body, block=False,
                                       timeout=self._core.chunk_timeout, payload=pages)
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
            return
        try:
            self.actor_ref.tell(_OpenFailed(target, isinstance(error, actors.UnknownActor),
                                            str(error)))
        except Exception:  # noqa: BLE001 - we stopped meanwhile
            pass

    def _check(self, cmd: core.CheckOffers) -> None:
        """Digest what the targets offered, on a thread of our own (it can be long)."""
        self._checker = ThreadPoolExecutor(1, thread_name_prefix="zfs.send-tree.check")
        job = self._checker.submit(_digest_ranges, self._spec.walked, cmd.ranges)
        me = self.actor_ref

        def done(finished: Future[dict[tuple[int, int], str]]) -> None:
            try:
                message = _Checked(finished.result())
            except BaseException as err:  # noqa: BLE001 - told to the actor, which fails
                message = _Checked({}, err)
            try:
                me.tell(message)
            except Exception:  # noqa: BLE001 - we stopped meanwhile
                pass
        job.add_done_callback(done)

    def _planned(self, cmd: core.Planned) -> None:
        for target in self._core.targets:
            held = cmd.held.get(target, {})
            self._held[target] = sum(held.values())

    def _send_plan(self, cmd: core.SendPlan) -> list[Any]:
        message = wire.TreePlan(self._spec.sid, cmd.size)
        return self._send((cmd.target,), message, (pack_plan(cmd.starts, cmd.own),))

    def _read(self, cmd: stream.ReadChunk) -> list[Any]:
        if self._core.finished:              # held back by the cap until after the end
            return []
        layout, now = self._core.layout, time.monotonic()
        assert layout is not None
        try:
            data = self._source.read(layout, cmd.offset, cmd.length, self._buffers)
        except ZfsError as err:
            return self._core.source_failed(str(err), now, Failure.CHANGED)
        except (OSError, ValueError) as err:
            return self._core.source_failed(f"cannot read the tree: {err}", now)
        self._digest.update(data)
        self._chunk = data
        return self._core.chunk_read(cmd.offset, len(data), now)

    def _send_chunk(self, cmd: stream.SendChunk) -> list[Any]:
        chunk, self._chunk = self._chunk, b""
        return self._send(cmd.targets, wire.Chunk(self._spec.sid, cmd.offset), (chunk,))

    def _end(self, cmd: stream.SendEnd) -> list[Any]:
        return self._send(cmd.targets, wire.End(self._spec.sid, cmd.size,
                                                self._digest.hexdigest()), ())

    def _send(self, targets: Sequence[str], message: wire.Message, payload: Any) -> list[Any]:
        body, now = wire.encode(message), time.monotonic()
        caused: list[Any] = []
        for target in targets:
            try:
                self.site.tell(f"{target}/{TREE_RECEIVER}", body, payload=payload)
            except actors.CodecError as err:
                return self._core.source_failed(f"cannot encode the message: {err}", now)
            except actors.ActorsError as err:
                if not isinstance(message, wire.Abort):
                    caused += self._core.target_lost(target, f"cannot reach: {err}", now)
        return caused

    def _progress(self, cmd: stream.Progressed) -> None:
        callback, now, layout = self._spec.on_progress, time.monotonic(), self._core.layout
        if callback is None or layout is None:
            return
        if now - self._progress_at.get(cmd.target, -1.0) < PROGRESS_INTERVAL \
                and cmd.bytes_done != layout.size:
            return
        self._progress_at[cmd.target] = now
        run_callback(callback, self._tree_progress(cmd.target, layout, cmd.bytes_done))

    def _tree_progress(self, target: str, layout: Layout, acked: int) -> Progress:
        files = len(self._manifest.files)
        done = layout.files_done(acked)
        current = self._manifest.file(done).path if done < files else ""
        return Progress(self._spec.name, self._held.get(target, 0) + acked,
                        self._manifest.size, target, None, done, files, current)

    def _finish(self, cmd: stream.Finished) -> None:
        if not self._future.done():
            if cmd.ok:
                self._future.set_result(self._result())
            else:
                assert cmd.failure is not None
                self._future.set_exception(failure_error(
                    cmd.failure, cmd.reason, cmd.culprit or self.site.name,
                    "" if cmd.failure in (Failure.INTEGRITY, Failure.REFUSED) else
                    "what the targets verified is kept: push the same folder again to resume"))
        if self.actor_ref.is_alive():
            self.actor_ref.stop(block=False)

    def _result(self) -> TreePushResult:
        layout = self._core.layout
        assert layout is not None
        manifest = self._manifest
        sent: list[str] = []
        skipped: list[str] = []
        for number in range(len(manifest.files)):
            moved = layout.end_of(number) - layout.begin_of(number)
            (sent if moved else skipped).append(manifest.file(number).path)
        return TreePushResult(self._spec.name, manifest.size, len(manifest.files), tuple(sent),
                              tuple(skipped), layout.size, list(self._core.targets),
                              time.monotonic() - self._started, self._spec.walked.skipped)


def _digest_ranges(walked: Walked, ranges: Sequence[tuple[int, int]]
                   ) -> dict[tuple[int, int], str]:
    """Our digest of each (file, first bytes) a target offered (on the checking thread)."""
    with TreeSource(walked.root, walked.manifest) as source:
        return {(file, length): source.digest(file, length) for file, length in ranges}
