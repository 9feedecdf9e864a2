"""The recipient's actor shell of pulling a tree: one :class:`TreeDownloadActor` per tree.

A download starts as a file's (:mod:`zfs.pull.download`); when the owner's answer says
the RID is a tree, that actor hands over to a :class:`TreeDownloadActor`, which drives
:class:`zfs.protocol.pull.tree.download.TreeDownload`: it fetches the manifest by pages,
prepares a :class:`~zfs.tree.staging.Staging` folder named by the owner's key (the same
for the same folder shared again, so a later run resumes, even from a restarted owner),
fetches what it does not hold as chunks of the tree's stream, writes each chunk's pieces
into the files they cover, checks every file against the owner's digest and renames the
tree in. Digesting and checking run on a thread of its own, so an abort is heard at once.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional

import actors
from zfs.errors import TransferAborted
from zfs.files import Digest
from zfs.protocol import wire
from zfs.protocol.errors import Failure, RemoteProtocolError
from zfs.protocol.pull.tree import commands as steps
from zfs.protocol.pull.tree import download as core
from zfs.protocol.tree.layout import DIGEST_CHARS, Offer
from zfs.protocol.tree.manifest import Manifest
from zfs.pull.book import OWNER
from zfs.results import Progress, TreeDownloadResult
from zfs.shell import (AbortRequested, Paced, PaceWake, Shell, ask_for, failure_error,
                       run_callback)
from zfs.supervisor import Tick, watch_time
from zfs.tree.modes import current_umask
from zfs.tree.removal import PULL_PREFIX
from zfs.tree.staging import Staging

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.1

# After these a tree's staging folder is deleted: what it holds is of no use (a bad name),
# our own disk failed (a full disk is freed), or our caller chose to abort. After any
# other end it is kept: a later run checks it file by file and resumes. (Files whose
# bytes differ from the owner's are deleted one by one when checked.)
_DISCARD = frozenset({Failure.UNSAFE_NAME, Failure.LOCAL, Failure.ABORTED})
_NO_REPORT = frozenset({Failure.LOST, Failure.UNKNOWN, Failure.EXPIRED})


@dataclass(frozen=True, slots=True)
class TreeDownloadOptions:
    """What a tree download was asked to do (a file's download hands them over)."""

    owner: str
    rid: str
    dest_dir: str
    window_chunks: int
    chunk_size: int
    request_timeout: float
    retries: int
    abort_signal: Any
    on_progress: Optional[Callable[[Progress], Any]]
    no_clobber: bool = False
    check_existing: bool = True
    bwlimit: Optional[float] = None


@dataclass(frozen=True, slots=True)
class TreeBegin:
    """Told once after spawn: start (the file download that handed over tells it)."""


@dataclass(frozen=True, slots=True)
class _Shared:
    """The owner's answer to whether it still shares the tree (a done future)."""

    done: Future[Any]


@dataclass(frozen=True, slots=True)
class _Done:
    """A job of the worker thread ended: ``apply`` turns its result into core events."""

    result: Any
    error: Optional[BaseException]
    apply: Callable[[Any], list[Any]]


class TreeDownloadActor(Shell):
    """Downloads one tree RID into ``dest_dir``; resolves ``future`` with the result."""

    def __init__(self, options: TreeDownloadOptions, future: Future[Any], info: wire.TreeInfo,
                 started: float) -> None:
        super().__init__()
        self._opt = options
        self._future = future
        self._info = info
        self._started = started
        self._owner = f"{options.owner}/{OWNER}"
        self._core = core.TreeDownload(window_chunks=options.window_chunks,
                                       chunk_size=options.chunk_size,
                                       request_timeout=options.request_timeout,
                                       retries=options.retries)
        self._sections: dict[wire.Section, bytearray] = {}
        self._staging: Optional[Staging] = None
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="zfs.dl-tree")
        self._busy = False                    # a job on the worker touches the staging
        self._result: Optional[TreeDownloadResult] = None
        self._manifest_digest = ""
        self._progress_at = -1.0
        self._ending: Optional[Failure] = None   # how it ended, once it did
        # A cap holds back our chunk requests, so the owner sends no faster than it allows.
        self._paced = Paced(self.actor_ref, options.bwlimit, options.chunk_size)
        dl = self._core
        self.receives = {
            wire.ChunkData: self._on_chunk, wire.MetaData: self._on_meta,
            wire.RangeDigest: lambda m: self._reply(m, dl.range_digest_received, m.offset,
                                                    m.length, m.digest),
            wire.Refusal: lambda m: self._reply(m, lambda failure, _now: dl.refused(failure),
                                                m.failure),
            Tick: self._on_tick, TreeBegin: self._begin, _Done: self._on_done,
            _Shared: self._on_shared,
            AbortRequested: lambda _: self.run(dl.abort_requested()),
            actors.PeerDown: self._on_peer_down, actors.PeerUp: self._on_peer_up,
            PaceWake: lambda _: self.run(self._paced.woken(self._request_chunk)),
        }
        self.carries_out = {
            steps.RequestMeta: lambda cmd: self._request(wire.MetaRequest(
                options.rid, cmd.section, cmd.offset, cmd.length)),
            steps.StoreMeta: self._store_meta, steps.LoadSection: self._load_section,
            steps.Prepare: self._prepare,
            steps.RequestRangeDigest: lambda cmd: self._request(wire.RangeDigestRequest(
                options.rid, cmd.offset, cmd.length)),
            steps.ApplyPlan: self._apply,
            steps.RequestChunk: lambda cmd: self._paced.carry_out(cmd, cmd.length,
                                                                 self._request_chunk),
            steps.ReportMark: lambda cmd: self._request(wire.MarkReport(options.rid, cmd.mark)),
            steps.CheckShared: self._check_shared,
            steps.WriteChunk: self._write, steps.Verify: self._verify, steps.Commit: self._commit,
            steps.Finish: self._finish,
        }

    def on_start(self) -> None:
        self.site.watch_peers(self.actor_ref)
        watch_time(self.site, self.name)

    def on_stop(self) -> None:
        self._give_up(TransferAborted("the download's site stopped", self.site.name))

    def on_failure(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._give_up(TransferAborted(f"download crashed: {exc!r}", self.site.name))

    def _give_up(self, error: TransferAborted) -> None:
        self._paced.stop()
        self._worker.shutdown(wait=False, cancel_futures=True)
        if self._staging is not None and not self._busy:
            self._staging.close()            # kept: a later run into the same folder resumes
        if not self._future.done():
            self._future.set_exception(error)

    def run(self, commands: Any) -> None:
        # Once the download ended, only its Finish is carried out.
        super().run(cmd for cmd in commands
                    if not self._core.finished or isinstance(cmd, steps.Finish))

    # -- what arrives

    def _aborted(self) -> bool:
        return self._opt.abort_signal is not None and bool(self._opt.abort_signal.is_set())

    def _begin(self, _message: TreeBegin) -> None:
        info = self._info
        self.run(self._core.abort_requested() if self._aborted() else self._core.started(
            info.name, info.key, info.files, info.size, info.manifest_size, time.monotonic()))

    def _on_tick(self, tick: Tick) -> None:
        self.run(self._core.abort_requested() if self._aborted()
                 else self._core.time_passed(tick.now))

    def _on_peer_down(self, event: actors.PeerDown) -> None:
        if event.name == self._opt.owner:
            self.run(self._core.owner_gone(time.monotonic(), f"owner lost: {event.reason}"))

    def _on_peer_up(self, event: actors.PeerUp) -> None:
        if event.name == self._opt.owner:
            self.run(self._core.owner_back(time.monotonic()))

    def _check_shared(self, _cmd: steps.CheckShared) -> list[Any]:
        """Ask (not tell) for the RID's info: a site without an owner fails the ask at once."""
        try:
            ask_for(self.actor_ref, self.site, self._owner,
                    wire.encode(wire.InfoRequest(self._opt.rid)), self._opt.request_timeout,
                    _Shared)
        except actors.ActorsError:
            pass                              # away again: the core's wait decides
        return []

    def _on_shared(self, message: _Shared) -> None:
        try:
            body = message.done.result()
        except actors.UnknownActor:
            self.run(self._core.refused(Failure.UNKNOWN, f"{self._opt.owner} shares nothing"))
            return
        except actors.ActorsError:
            return                            # away again, or slow: the core's timeouts decide
        self.on_receive(body)                 # its TreeInfo (still shared) or a Refusal

    def _reply(self, message: Any, event: Callable[..., list[Any]], *args: Any) -> None:
        if message.rid == self._opt.rid:
            self.run(event(*args, time.monotonic()))

    def _one_frame(self, message: Any) -> bool:
        """Whether ``message`` is about our RID with one payload frame (else it fails us)."""
        if message.rid != self._opt.rid:
            return False
        if self._aborted():
            self.run(self._core.abort_requested())
            return False
        if len(self.payload) != 1:
            self.run(self._core.refused(Failure.PROTOCOL, "an answer without exactly one "
                                        "payload frame"))
            return False
        return True

    def _on_chunk(self, message: wire.ChunkData) -> None:
        if self._one_frame(message):
            self.run(self._core.chunk_received(message.offset, len(self.payload[0]),
                                               time.monotonic()))

    def _on_meta(self, message: wire.MetaData) -> None:
        if self._one_frame(message):
            self.run(self._core.meta_received(message.section, message.offset,
                                              len(self.payload[0]), time.monotonic()))

    def on_bad_message(self, body: Any, error: RemoteProtocolError) -> None:
        """A malformed answer about our RID ends the download."""
        super().on_bad_message(body, error)
        if type(body) is list and len(body) > 1 and body[1] == self._opt.rid:
            self.run(self._core.refused(Failure.PROTOCOL, f"malformed answer: {error}"))

    # -- the worker thread

    def _off_thread(self, job: Callable[[], Any], apply: Callable[[Any], list[Any]]) -> None:
        """Run ``job`` on the worker; ``apply(result)`` then runs on the actor's thread."""
        self._busy = True
        me = self.actor_ref

        def done(finished: Future[Any]) -> None:
            try:
                message = _Done(finished.result(), None, apply)
            except BaseException as err:  # noqa: BLE001 - told to the actor, which fails
                message = _Done(None, err, apply)
            try:
                me.tell(message)
            except Exception:  # noqa: BLE001 - we stopped meanwhile
                pass
        self._worker.submit(job).add_done_callback(done)

    def _on_done(self, message: _Done) -> None:
        self._busy = False
        if self._core.finished:              # ended meanwhile: Finish already ran
            if isinstance(message.result, tuple) and isinstance(message.result[0], Staging):
                self._staging = message.result[0]
            self._keep_or_discard(self._ending)
            self.stop()
            return
        if message.error is not None:
            error = message.error
            if isinstance(error, FileExistsError):
                self.run(self._core.refused(Failure.REFUSED, f"{self._core.name} exists in "
                                            f"{self._opt.dest_dir} and no_clobber is set"))
            else:
                self.run(self._core.local_error(f"tree in {self._opt.dest_dir}: {error}"))
            return
        self.run(message.apply(message.result))

    # -- what the core asks for

    def _request(self, message: wire.Message) -> list[Any]:
        try:
            self.site.tell(self._owner, wire.encode(message))
        except actors.PeerLost as err:
            return self._core.owner_gone(time.monotonic(), f"cannot reach "
                                         f"{self._opt.owner}: {err}")
        except actors.ActorsError as err:
            return self._core.owner_lost(f"cannot reach {self._opt.owner}: {err}")
        return []

    def _request_chunk(self, cmd: steps.RequestChunk) -> list[Any]:
        if self._core.finished:              # held back by the cap until after the end
            return []
        return self._request(wire.ChunkRequest(self._opt.rid, cmd.offset, cmd.length,
                                               cmd.mark))

    def _store_meta(self, cmd: steps.StoreMeta) -> None:
        data = self.payload[0]
        size = (self._info.manifest_size if cmd.section is wire.Section.MANIFEST
                else self._info.files * DIGEST_CHARS)
        buffer = self._sections.setdefault(cmd.section, bytearray(size))
        buffer[cmd.offset:cmd.offset + len(data)] = data

    def _load_section(self, cmd: steps.LoadSection) -> list[Any]:
        data = bytes(self._sections.pop(cmd.section, b""))
        if cmd.section is wire.Section.MANIFEST:
            digest = Digest()
            digest.update(data)
            self._manifest_digest = digest.hexdigest()
        return self._core.section_loaded(cmd.section, data, time.monotonic())

    def _prepare(self, cmd: steps.Prepare) -> None:
        opt, manifest, name = self._opt, cmd.manifest, self._core.name

        def job() -> tuple[Staging, list[Offer]]:
            if opt.no_clobber and os.path.lexists(os.path.join(opt.dest_dir, name)):
                raise FileExistsError(errno.EEXIST, "exists", name)
            staging = Staging(opt.dest_dir, name, PULL_PREFIX + cmd.key, manifest,
                              current_umask(), inline_digests=True)
            try:
                return staging, staging.offers(staging.holdings(opt.check_existing))
            except BaseException:
                staging.close()
                raise

        def apply(result: tuple[Staging, list[Offer]]) -> list[Any]:
            self._staging = result[0]
            return self._core.prepared(result[1], time.monotonic())
        self._off_thread(job, apply)

    def _apply(self, cmd: steps.ApplyPlan) -> list[Any]:
        assert self._staging is not None
        try:
            self._staging.apply(cmd.held)
        except OSError as err:
            return self._core.local_error(f"cannot make the tree in {self._opt.dest_dir}: "
                                          f"{err.strerror or err}")
        return self._core.plan_applied(time.monotonic())

    def _write(self, cmd: steps.WriteChunk) -> list[Any]:
        staging, layout = self._staging, self._core.layout
        assert staging is not None and layout is not None
        data = memoryview(self.payload[0])
        try:
            for piece in layout.pieces(cmd.offset, len(data)):
                staging.write(piece.file, piece.offset, data[piece.at:piece.at + piece.length])
        except OSError as err:
            return self._core.local_error(f"cannot write in {staging.path}: {err}")
        self._progress()
        return []

    def _progress(self, final: bool = False) -> None:
        callback, now, dl = self._opt.on_progress, time.monotonic(), self._core
        if callback is None or (now - self._progress_at < PROGRESS_INTERVAL and not final):
            return
        self._progress_at = now
        done = dl.files_done()
        assert dl.manifest is not None
        current = dl.manifest.file(done).path if done < dl.files else ""
        run_callback(callback, Progress(dl.name, dl.bytes_done, dl.total, self._opt.owner,
                                        None, done, dl.files, current))

    def _verify(self, cmd: steps.Verify) -> None:
        staging = self._staging
        assert staging is not None
        self._off_thread(lambda: staging.verify(cmd.files, cmd.digests), self._core.verified)

    def _commit(self, _cmd: steps.Commit) -> list[Any]:
        staging, dl = self._staging, self._core
        assert staging is not None and dl.manifest is not None and dl.layout is not None
        try:
            path = staging.commit(self._opt.no_clobber)
        except FileExistsError:
            return dl.refused(Failure.REFUSED, f"{dl.name} exists in {self._opt.dest_dir} "
                              "and no_clobber is set")
        except OSError as err:
            return dl.local_error(f"cannot put {dl.name} in place: {err}")
        self._staging = None
        fetched: list[str] = []
        skipped: list[str] = []
        for number in range(dl.files):
            whole = dl.held.get(number, 0) == dl.layout.sizes[number]
            (skipped if whole else fetched).append(dl.manifest.file(number).path)
        self._result = TreeDownloadResult(
            dl.name, path, dl.total, self._manifest_digest, self._opt.owner, dl.received,
            time.monotonic() - self._started, dl.files, tuple(fetched), tuple(skipped))
        self._progress(final=True)
        return dl.committed()

    def _finish(self, cmd: steps.Finish) -> None:
        if cmd.failure not in _NO_REPORT:
            status = wire.Status.SUCCESS if cmd.state is steps.TreeDlState.DONE else (
                wire.Status.ABORTED if cmd.state is steps.TreeDlState.ABORTED
                else wire.Status.FAILED)
            try:
                self.site.tell(self._owner, wire.encode(wire.DoneReport(self._opt.rid, status)))
            except actors.ActorsError:
                pass
        self._ending = cmd.failure
        self._paced.stop()
        if self._busy:                       # the worker holds the staging: after its job
            note = "" if cmd.failure in _DISCARD else _KEPT.format(self._opt.dest_dir)
        else:
            note = self._keep_or_discard(cmd.failure)
        if self._result is not None and cmd.state is steps.TreeDlState.DONE:
            self._future.set_result(self._result)
        elif not self._future.done():
            assert cmd.failure is not None
            ours = cmd.failure in (Failure.LOCAL, Failure.ABORTED)
            site = self.site.name if ours else self._opt.owner
            self._future.set_exception(failure_error(cmd.failure, cmd.detail, site, note))
        if not self._busy:
            self.stop()

    def _keep_or_discard(self, failure: Optional[Failure]) -> str:
        """Delete the staging tree after a failure that spoiled it; else keep it, and
        return the note that says so."""
        staging, self._staging = self._staging, None
        if staging is None:
            return ""
        try:
            if failure in _DISCARD:
                staging.discard()
                return ""
            staging.close()
        except OSError as err:
            log.warning("cannot clean up %s: %s", staging.path, err)
            return ""
        return _KEPT.format(self._opt.dest_dir)


_KEPT = ("what was received and checked is kept in {}: download the same tree into it "
         "again to resume")
