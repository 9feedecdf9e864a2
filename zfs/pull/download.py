"""The recipient's actor shell of pull: one :class:`DownloadActor` per download.

:class:`DownloadActor` (``"zfs.dl.<hex>"``) drives
:class:`zfs.protocol.pull.download.Download`. It keeps a window of chunk requests in
flight to the owner's :class:`~zfs.pull.owner.OwnerActor`, writes into a
:class:`~zfs.files.PartialFile` keyed by the owner's resume key (the same for the same
file shared again, so a restarted download finds and checks its bytes even under a new
RID), verifies and renames. A file already at its final place with the owner's size is
checked by digest as a complete partial would be, and kept if it matches: no byte moves.
``InfoRequest`` is an ask, so a site with no owner actor fails the download at once;
the other requests are tells. :mod:`zfs.pull.calls` starts one. If the owner answers
that the RID is a tree (a folder), the actor hands the download to a
:class:`~zfs.pull.tree.download.TreeDownloadActor` and stops; a file pulled with peers
goes to a :class:`~zfs.swarm.download.SwarmDownloadActor` the same way.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Optional


import actors
from zfs.errors import IntegrityError, TransferAborted, UnsafeName
from zfs.files import digest_range
from zfs.partials import PartialFile, check_room, complete_there
from zfs.protocol import wire
from zfs.protocol.errors import Failure, RemoteProtocolError
from zfs.protocol.pull import download as core
from zfs.pull.book import OWNER
from zfs.pull.tree.download import TreeBegin, TreeDownloadActor, TreeDownloadOptions
from zfs.results import DownloadResult, Progress, TreeDownloadResult
from zfs.shell import (AbortRequested, Paced, PaceWake, Shell, Transfer, ask_for,
                       failure_error, run_callback)
from zfs.supervisor import Tick, remove_later, watch_time
from zfs.swarm.download import SwarmBegin, SwarmDownloadActor, SwarmOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DownloadOptions:
    owner: str
    rid: str
    dest_dir: str
    window_chunks: int
    chunk_size: int
    request_timeout: float
    retries: int
    abort_signal: Any
    on_progress: Optional[Callable[[Progress], Any]]
    bwlimit: Optional[float] = None
    no_clobber: bool = False
    check_existing: bool = True
    swarm: bool = False
    seed: bool = True


@dataclass(frozen=True, slots=True)
class Begin:
    pass


@dataclass(frozen=True, slots=True)
class _InfoAnswer:
    done: Future[Any]


# Failures after which the bytes on disk are wrong or of another file, our own disk failed
# (a full disk is freed), or our caller chose to abort: deleted. After any other end they
# are kept for a resume (a rerun checks them against the owner's digest first): an owner
# that restarted and no longer knows the RID, or ended its share, must not cost a
# recipient what it holds.
_DISCARD_PARTIAL = frozenset({Failure.INTEGRITY, Failure.CHANGED, Failure.UNSAFE_NAME,
                              Failure.LOCAL, Failure.ABORTED})
# Endings the owner cannot (or need not) hear about.
_NO_REPORT = frozenset({Failure.LOST, Failure.UNKNOWN, Failure.EXPIRED})
_STATUS = {core.DlState.DONE: wire.Status.SUCCESS, core.DlState.ABORTED: wire.Status.ABORTED}


class DownloadActor(Shell):
    """Downloads one RID into ``dest_dir``; resolves ``future`` with the result.

    Started by :func:`zfs.pull.calls.download_async`; it stops itself when the download ends.
    """

    def __init__(self, options: DownloadOptions,
                 future: Future[DownloadResult | TreeDownloadResult]) -> None:
        super().__init__()
        self._opt = options
        self._future = future
        self._owner = f"{options.owner}/{OWNER}"
        self._core = core.Download(window_chunks=options.window_chunks,
                                   chunk_size=options.chunk_size,
                                   request_timeout=options.request_timeout,
                                   retries=options.retries)
        self._partial: Optional[PartialFile] = None
        self._result: Optional[DownloadResult] = None
        self._key = ""
        self._started = 0.0
        self._abort = options.abort_signal
        # A cap holds back our requests, so the owner sends no faster than it allows.
        self._paced = Paced(self.actor_ref, options.bwlimit, options.chunk_size)
        self._handed_over = False
        #: The file already at the final place, checked as if it were a complete partial
        #: (then nothing is fetched); None once a partial file is used.
        self._existing: Optional[str] = None
        self._existing_digest = ""
        dl = self._core
        self.receives = {
            wire.ChunkData: self._on_chunk,
            wire.FileInfo: self._on_file_info,
            wire.TreeInfo: self._become_tree,
            wire.PrefixDigest: lambda m: self._reply(m, dl.prefix_received, m.length, m.digest),
            wire.FileDigest: lambda m: self._reply(m, lambda digest, _now: dl.digest_received(
                digest), m.digest),
            wire.Refusal: lambda m: self._reply(m, lambda failure, _now: dl.refused(failure),
                                                m.failure),
            Tick: self._on_tick, _InfoAnswer: self._on_info_answer, Begin: self._begin,
            AbortRequested: lambda _: self.run(dl.abort_requested()),
            actors.PeerDown: self._on_peer_down, actors.PeerUp: self._on_peer_up,
            PaceWake: lambda _: self.run(self._paced.woken(self._request_chunk)),
        }
        self.carries_out = {
            core.RequestChunk: lambda cmd: self._paced.carry_out(cmd, cmd.length,
                                                                 self._request_chunk),
            core.WriteChunk: self._write, core.RequestInfo: self._ask_info,
            core.RequestPrefix: lambda cmd: self._request(wire.PrefixRequest(
                options.rid, cmd.length)),
            core.ReportMark: lambda cmd: self._request(wire.MarkReport(options.rid, cmd.mark)),
            core.RequestDigest: lambda cmd: self._request(wire.DigestRequest(options.rid)),
            core.Finish: self._finish, core.OpenPartial: self._open_partial,
            core.DigestPrefix: self._digest_prefix, core.StartOver: self._start_over,
            core.Commit: self._commit,
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
        # The temporary file stays: a later run into the same folder may resume it.
        if not self._future.done() and not self._handed_over:
            self._future.set_exception(error)

    def run(self, commands: Any) -> None:
        # Once the download ended, requests queued before (say, before a write failed)
        # are not carried out; its Finish is.
        super().run(cmd for cmd in commands
                    if not self._core.finished or isinstance(cmd, core.Finish))

    # -- what arrives

    def _aborted(self) -> bool:
        return self._abort is not None and bool(self._abort.is_set())

    def _begin(self, _message: Begin) -> None:
        self._started = time.monotonic()
        self.run(self._core.abort_requested() if self._aborted()
                 else self._core.started(self._started))

    def _on_tick(self, tick: Tick) -> None:
        cmds = (self._core.abort_requested() if self._aborted()
                else self._core.time_passed(tick.now))
        if cmds:
            log.info("download of %s, on a tick: %s", self._opt.rid, cmds)
        self.run(cmds)

    def _on_peer_down(self, event: actors.PeerDown) -> None:
        if event.name == self._opt.owner:
            self.run(self._core.owner_gone(time.monotonic(), f"owner lost: {event.reason}"))

    def _on_peer_up(self, event: actors.PeerUp) -> None:
        if event.name == self._opt.owner:
            self.run(self._core.owner_back(time.monotonic()))

    def _become_tree(self, info: wire.TreeInfo) -> None:
        """The RID is a tree: a tree download takes over, with our future and options."""
        if info.rid != self._opt.rid or self._core.state is not core.DlState.OPENING \
                or self._handed_over:
            return
        opt = self._opt
        options = TreeDownloadOptions(opt.owner, opt.rid, opt.dest_dir, opt.window_chunks,
                                      opt.chunk_size, opt.request_timeout, opt.retries,
                                      opt.abort_signal, opt.on_progress, opt.no_clobber,
                                      opt.check_existing, opt.bwlimit)
        ref = self.site.spawn(TreeDownloadActor, f"{self.name}.tree", options, self._future,
                              info, self._started)
        if isinstance(self._future, Transfer):
            self._future.started(ref)
        self._handed_over = True
        ref.tell(TreeBegin())
        self.stop()

    def _on_file_info(self, info: wire.FileInfo) -> None:
        if self._opt.swarm and info.rid == self._opt.rid \
                and self._core.state is core.DlState.OPENING and not self._handed_over:
            self._become_swarm()
        else:
            self._reply(info, self._core.info_received, info.name, info.size, info.key)

    def _become_swarm(self) -> None:
        """The RID is a file and the caller wants peers: a swarm download takes over."""
        opt = self._opt
        options = SwarmOptions(opt.owner, self._owner, opt.rid, opt.dest_dir, opt.window_chunks,
                               opt.request_timeout, opt.retries, opt.abort_signal,
                               opt.on_progress, opt.no_clobber, opt.check_existing, opt.seed)
        ref = self.site.spawn(SwarmDownloadActor, f"{self.name}.swarm", options, self._future)
        if isinstance(self._future, Transfer):
            self._future.started(ref)
        self._handed_over = True
        ref.tell(SwarmBegin(self._started))
        self.stop()

    def _reply(self, message: Any, event: Callable[..., list[Any]], *args: Any) -> None:
        """Hand the owner's answer to the core, if it is about our RID."""
        if message.rid == self._opt.rid:
            self.run(event(*args, time.monotonic()))

    def _on_chunk(self, message: wire.ChunkData) -> None:
        if message.rid != self._opt.rid:
            return
        dl, now = self._core, time.monotonic()
        if self._aborted():
            self.run(dl.abort_requested())
        elif len(self.payload) != 1:
            self.run(dl.refused(Failure.PROTOCOL, "chunk without exactly one payload frame"))
        else:
            self.run(dl.chunk_received(message.offset, len(self.payload[0]), now))

    def on_bad_message(self, body: Any, error: RemoteProtocolError) -> None:
        """A malformed answer about our RID ends the download (it cannot go on)."""
        super().on_bad_message(body, error)
        if type(body) is list and len(body) > 1 and body[1] == self._opt.rid:
            self.run(self._core.refused(Failure.PROTOCOL, f"malformed answer: {error}"))

    # -- what the core asks for

    def _request(self, message: wire.Message) -> list[Any]:
        try:
            self.site.tell(self._owner, wire.encode(message))
        except actors.PeerLost as err:       # a link down: wait for it to come back
            return self._core.owner_gone(time.monotonic(), f"cannot reach "
                                         f"{self._opt.owner}: {err}")
        except actors.ActorsError as err:
            return self._core.owner_lost(f"cannot reach {self._opt.owner}: {err}")
        return []

    def _request_chunk(self, cmd: core.RequestChunk) -> list[Any]:
        if self._core.finished:              # held back by the cap until after the end
            return []
        return self._request(wire.ChunkRequest(self._opt.rid, cmd.offset, cmd.length,
                                               cmd.mark))

    def _ask_info(self, _cmd: core.RequestInfo) -> list[Any]:
        """Ask (not tell) for the info: a site without an owner then answers at once."""
        try:
            ask_for(self.actor_ref, self.site, self._owner,
                    wire.encode(wire.InfoRequest(self._opt.rid)), self._opt.request_timeout,
                    _InfoAnswer)
        except actors.ActorsError as err:
            return self._core.owner_lost(f"cannot reach {self._opt.owner}: {err}")
        return []

    def _on_info_answer(self, message: _InfoAnswer) -> None:
        dl = self._core
        try:
            body = message.done.result()
        except actors.UnknownActor:
            self.run(dl.refused(Failure.UNKNOWN, f"{self._opt.owner} shares nothing"))
            return
        except actors.AskTimeout:
            return                           # the core resends on its own deadline
        except actors.ActorsError as err:
            self.run(dl.owner_lost(str(err)))
            return
        self.on_receive(body)                # a FileInfo or a Refusal, checked by decode

    def _write(self, cmd: core.WriteChunk) -> list[Any]:
        assert self._partial is not None
        try:
            self._partial.write_at(cmd.offset, self.payload[0])
        except OSError as err:
            return self._core.local_error(f"cannot write {self._partial.temp_path}: {err}")
        if self._opt.on_progress is not None:
            dl = self._core
            run_callback(self._opt.on_progress, Progress(dl.name, dl.bytes_done, dl.size,
                                                         self._opt.owner))
        return []

    def _open_partial(self, cmd: core.OpenPartial) -> list[Any]:
        self._key = cmd.key
        final = os.path.join(self._opt.dest_dir, cmd.name)
        if self._opt.no_clobber and os.path.lexists(final):
            return self._core.refused(Failure.REFUSED, f"{cmd.name} exists in "
                                      f"{self._opt.dest_dir} and no_clobber is set")
        if self._opt.check_existing and complete_there(self._opt.dest_dir, cmd.name, cmd.key,
                                                       self._core.size):
            self._existing = final           # checked by digest as a complete partial is
            return self._core.partial_opened(self._core.size, time.monotonic())
        return self._on_disk(lambda: self._core.partial_opened(self._new_partial(cmd.name),
                                                               time.monotonic()))

    def _new_partial(self, name: str) -> int:
        self._partial = PartialFile(self._opt.dest_dir, name, key=self._key)
        have = self._partial.existing_size
        check_room(self._opt.dest_dir, max(0, self._core.size - have))   # before a byte
        return have

    def _digest_prefix(self, cmd: core.DigestPrefix) -> list[Any]:
        if self._existing is not None:
            existing = self._existing

            def digest_existing() -> list[Any]:
                fd = os.open(existing, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
                try:
                    self._existing_digest, _got = digest_range(fd, cmd.length)
                finally:
                    os.close(fd)
                return self._core.prefix_digested(self._existing_digest, time.monotonic())
            return self._on_disk(digest_existing)
        partial = self._partial
        assert partial is not None
        return self._on_disk(lambda: self._core.prefix_digested(
            partial.digest_prefix(cmd.length), time.monotonic()))

    def _start_over(self, _cmd: core.StartOver) -> list[Any]:
        if self._existing is None:
            assert self._partial is not None
            self._drop(self._partial)
        self._existing = None                # the file there differs: fetch it after all

        def reopen() -> list[Any]:
            self._new_partial(self._core.name)
            return []
        return self._on_disk(reopen)

    def _commit(self, cmd: core.Commit) -> list[Any]:
        if self._existing is not None:       # the file there is the owner's: keep it
            if cmd.digest != self._existing_digest:
                return self._core.commit_failed("the file there changed while checked")
            self._result = DownloadResult(self._core.name, self._existing, cmd.size, cmd.digest,
                                          self._opt.owner, 0, time.monotonic() - self._started)
            return self._core.committed()
        partial = self._partial
        assert partial is not None
        try:
            path = partial.commit(cmd.size, cmd.digest)
        except IntegrityError as err:
            self._drop(partial)
            return self._core.commit_failed(err.reason)
        except (OSError, UnsafeName) as err:
            self._drop(partial)
            return self._core.local_error(f"cannot put {partial.name} in place: {err}")
        self._partial = None
        self._result = DownloadResult(self._core.name, path, cmd.size, cmd.digest,
                                      self._opt.owner, self._core.received,
                                      time.monotonic() - self._started)
        return self._core.committed()

    def _drop(self, partial: PartialFile) -> None:
        """Delete a partial file now, or have the supervisor retry until it can."""
        if not partial.discard():
            remove_later(self.site, partial.temp_path)

    def _on_disk(self, step: Callable[[], list[Any]]) -> list[Any]:
        """Run a step that touches our temporary file; a disk error fails the download."""
        try:
            return step()
        except (OSError, UnsafeName) as err:
            return self._core.local_error(f"temporary file in {self._opt.dest_dir}: {err}")

    def _finish(self, cmd: core.Finish) -> None:
        self._paced.stop()
        if cmd.failure not in _NO_REPORT:
            status = _STATUS.get(cmd.state, wire.Status.FAILED)
            try:
                self.site.tell(self._owner, wire.encode(wire.DoneReport(self._opt.rid, status)))
            except actors.ActorsError:
                pass
        note = self._keep_or_discard(cmd.failure)
        if self._result is not None and cmd.state is core.DlState.DONE:
            self._future.set_result(self._result)
        elif not self._future.done():
            assert cmd.failure is not None
            ours = cmd.failure in (Failure.LOCAL, Failure.ABORTED)
            site = self.site.name if ours else self._opt.owner
            self._future.set_exception(failure_error(cmd.failure, cmd.detail, site, note))
        self.stop()

    def _keep_or_discard(self, failure: Optional[Failure]) -> str:
        """Delete the temporary file after a failure that spoiled it; else keep it, and
        return the note that says so."""
        partial = self._partial
        if partial is None or failure is None:
            return ""
        if failure in _DISCARD_PARTIAL or partial.size == 0:
            self._drop(partial)
            return ""
        partial.close()
        return (f"the {partial.size} bytes received are kept in {self._opt.dest_dir}: "
                f"download the same file into it again to resume")
