"""A recipient's side of pull with peers: one :class:`SwarmDownloadActor` per download.

It drives :class:`zfs.protocol.swarm.download.SwarmDownload` (what to fetch, from whom,
what to report) and :class:`zfs.protocol.swarm.seeder.Seeder` (what to serve). Pieces
from the owner are written as they come; pieces from a peer are checked against the
owner's SHA-256 of that chunk first, so a faulty or hostile peer costs time, never a
wrong byte. It links to the peers the owner points it at itself (non-blocking: a peer
not linked within 5 s (:mod:`zfs.swarm.dialer`) is reported unreachable and the owner
serves the chunk instead). Chunks it verified are served to the peers that ask, while
it downloads and, once its file is in place, until the owner ends the share (or the
owner's site goes away, or the app stops the site).

A plain download (:mod:`zfs.pull.download`) hands over to this actor once the owner's
answer says the RID is a file and the caller asked for ``swarm=True``. The temporary
file is written at any offset; which chunks it holds is kept beside it
(:mod:`zfs.swarm.held`) so a rerun resumes. Commit checks size and whole-file digest
before the rename, as every other transfer does.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Optional

import actors
from zfs.errors import IntegrityError, TransferAborted, UnsafeName
from zfs.files import file_digest
from zfs.partials import PartialFile, check_room, complete_there
from zfs.protocol import wire
from zfs.protocol.errors import Failure, RemoteProtocolError
from zfs.protocol.swarm import download as core
from zfs.protocol.swarm import downloading as steps
from zfs.protocol.swarm import pullcodec
from zfs.protocol.swarm.seeder import ReadPiece, Seeder
from zfs.protocol.swarm.wire import (Decline, Digest, Digests, Ended, Fetch, Get, Piece,
                                     Rejoin, Send, Wait, Welcome)
from zfs.results import DownloadResult, Progress
from zfs.shell import AbortRequested, Shell, failure_error, run_callback, tell_or_log
from zfs.supervisor import Tick, remove_later, watch_time
from zfs.swarm import held
from zfs.swarm.dialer import Dialer

log = logging.getLogger(__name__)

_SAVE_EVERY = 1.0            # seconds between saves of the held set


@dataclass(frozen=True, slots=True)
class SwarmOptions:
    """A download with peers, as :func:`zfs.download` was called."""

    owner: str                 # the owner's site
    owner_address: str         # its owner actor
    rid: str
    dest_dir: str
    window_chunks: int
    request_timeout: float
    retries: int
    abort_signal: Any
    on_progress: Optional[Callable[[Progress], Any]]
    no_clobber: bool
    check_existing: bool
    seed: bool                 # serve peers after the file is in place


@dataclass(frozen=True, slots=True)
class SwarmBegin:
    """Told once the actor is registered: join the swarm."""

    started: float


# How the core's detail of a failure maps to the error the caller gets.
_FAILURES = (("owner lost", Failure.LOST), ("integrity", Failure.INTEGRITY),
             ("local", Failure.LOCAL), ("aborted", Failure.ABORTED),
             ("no answer", Failure.TIMEOUT))


class SwarmDownloadActor(Shell):
    """Downloads one RID from its owner and its peers; serves peers what it holds."""

    def __init__(self, options: SwarmOptions, future: Future[DownloadResult]) -> None:
        super().__init__()
        self._opt, self._future = options, future
        endpoint = self.site.endpoint if self.site.endpoint and \
            self.site.endpoint.startswith("tcp://") else None
        self._core = core.SwarmDownload(options.rid, options.owner_address, endpoint=endpoint,
                                        window_chunks=options.window_chunks,
                                        request_timeout=options.request_timeout,
                                        retries=options.retries, seeds=options.seed)
        self._seeder: Optional[Seeder] = None
        self._partial: Optional[PartialFile] = None
        self._reader = -1                     # our own descriptor of the file, to serve from
        self._existing: Optional[str] = None  # the file already in place, checked at commit
        self._refusal: Optional[Failure] = None
        self._dialer = Dialer(self.site)
        self._saved, self._saved_at = 0, 0.0
        self._started = 0.0
        self._result: Optional[DownloadResult] = None
        dl = self._core
        self.receives = {
            Welcome: lambda m: self._from_owner(m, dl.welcomed),
            Fetch: lambda m: self._from_owner(m, dl.fetch_received),
            Digests: lambda m: self._from_owner(m, dl.digests_received),
            Wait: lambda m: self._from_owner(m, lambda _m, now: dl.wait_received(now)),
            Rejoin: lambda m: self._from_owner(m, lambda _m, now: dl.rejoin_received(now)),
            Digest: lambda m: self._from_owner(m, lambda msg, now: dl.digest_received(
                msg.digest, now)),
            Ended: self._on_ended, wire.Refusal: self._on_refusal,
            Piece: self._on_piece, Get: self._on_get, Decline: self._on_decline,
            SwarmBegin: self._begin, Tick: self._on_tick,
            AbortRequested: lambda _: self.run(dl.abort_requested()),
            actors.PeerDown: self._on_peer_down, actors.PeerUp: self._on_peer_up,
        }
        self.carries_out = {
            Send: self._send, steps.OpenPartial: self._open, steps.Dial: self._dial,
            steps.CheckPiece: self._check, steps.WriteChunk: self._write,
            steps.Commit: self._commit, steps.Finish: self._finish, ReadPiece: self._serve,
        }

    def on_start(self) -> None:
        self.site.watch_peers(self.actor_ref)
        watch_time(self.site, self.name)

    def on_stop(self) -> None:
        self._close()
        if not self._future.done():
            self._future.set_exception(TransferAborted("the download's site stopped",
                                                       self.site.name))

    def on_failure(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._close()
        if not self._future.done():
            self._future.set_exception(TransferAborted(f"download crashed: {exc!r}",
                                                       self.site.name))

    def on_receive(self, message: Any) -> Any:
        if pullcodec.is_pull_swarm(message):
            try:
                message = pullcodec.decode(message)
            except RemoteProtocolError as err:
                self.on_bad_message(message, err)
                return None
        return super().on_receive(message)

    # -- what arrives

    def _begin(self, message: SwarmBegin) -> None:
        self._started = message.started
        self.run(self._core.started(time.monotonic()))

    def _owner_said(self, message: Any) -> bool:
        """Whether ``message`` is about our RID and came from the owner's site (digests
        come from its digest threads, not from its owner actor)."""
        return message.rid == self._opt.rid and \
            (self.sender or "").partition("/")[0] == self._opt.owner

    def _from_owner(self, message: Any, event: Callable[[Any, float], list[Any]]) -> None:
        if self._owner_said(message):
            self.run(event(message, time.monotonic()))

    def _on_refusal(self, message: wire.Refusal) -> None:
        if self._owner_said(message):
            self._refusal = message.failure
            self.run(self._core.refused(f"the owner refused: {message.failure.value}"))

    def _on_ended(self, message: Ended) -> None:
        if not self._owner_said(message):
            return
        if self._seeder is not None:
            self._seeder.share_ended()
        if self._core.finished:
            self.stop()
        else:
            self._refusal = Failure.EXPIRED
            self.run(self._core.refused("the owner ended the share"))

    def _on_piece(self, message: Piece) -> None:
        payload = self.payload
        if message.rid != self._opt.rid or self.sender is None:
            return
        length = len(payload[0]) if len(payload) == 1 else -1
        self.run(self._core.piece_received(self.sender, message.index, length,
                                           time.monotonic()))

    def _on_get(self, message: Get) -> None:
        if message.rid != self._opt.rid or self.sender is None or "/" not in self.sender:
            return
        if self._seeder is None:
            self._tell(self.sender, Decline(message.rid, message.index, "not started"))
            return
        self.run(self._seeder.get_received(self.sender, message.index, time.monotonic()))

    def _on_decline(self, message: Decline) -> None:
        if message.rid == self._opt.rid and self.sender is not None:
            self.run(self._core.declined(self.sender, message.index, time.monotonic()))

    def _on_tick(self, tick: Tick) -> None:
        dl, now = self._core, time.monotonic()
        if dl.finished:
            return
        if self._opt.abort_signal is not None and self._opt.abort_signal.is_set():
            self.run(dl.abort_requested())
            return
        released, given_up = self._dialer.check(now)
        self._release(released)
        for peer in given_up:                          # reported once; the owner avoids it
            self.run(dl.peer_unreachable(peer, now))
        self.run(dl.time_passed(now))
        if now - self._saved_at >= _SAVE_EVERY:
            self._save_held()

    def _on_peer_up(self, event: actors.PeerUp) -> None:
        self._release(self._dialer.linked(event.name))

    def _release(self, messages: list[tuple[str, Any]]) -> None:
        """Send what waited for a peer's link."""
        for to, message in messages:
            self.run(self._send(Send((to,), message)))

    def _on_peer_down(self, event: actors.PeerDown) -> None:
        if event.name == self._opt.owner and self._core.finished:
            self.stop()                       # nobody will say the share ended
            return
        self.run(self._core.site_lost(event.name, time.monotonic()))

    # -- what the cores ask for

    def _send(self, cmd: Send) -> list[Any]:
        caused: list[Any] = []
        for to in cmd.to:
            if self._dialer.hold(to, cmd.message):
                continue
            if not self._tell(to, cmd.message) and to != self._opt.owner_address:
                caused += self._core.peer_unreachable(to, time.monotonic())
        return caused

    def _tell(self, to: str, message: Any, payload: tuple[Any, ...] = ()) -> bool:
        return tell_or_log(self.site, to, pullcodec.encode(message), payload)

    def _dial(self, cmd: steps.Dial) -> list[Any]:
        if self._dialer.dial(cmd.peer, cmd.endpoint, time.monotonic()):
            return []
        return self._core.peer_unreachable(cmd.peer, time.monotonic())

    def _open(self, cmd: steps.OpenPartial) -> list[Any]:
        dl, opt = self._core, self._opt
        final = os.path.join(opt.dest_dir, cmd.name)
        if opt.no_clobber and os.path.lexists(final):
            self._refusal = Failure.REFUSED
            return dl.refused(f"{cmd.name} exists in {opt.dest_dir} and no_clobber is set")
        self._seeder = Seeder(opt.rid, size=dl.size, chunk_size=dl.chunk_size)
        key = f"swarm-{cmd.key}"
        try:
            if opt.check_existing and complete_there(opt.dest_dir, cmd.name, key, dl.size):
                self._existing = final
                self._reader = _open_reader(final)
                return dl.partial_opened(range(dl.total), time.monotonic())
            partial = self._partial = PartialFile(opt.dest_dir, cmd.name, key=key)
            chunks = held.load(partial.temp_path, dl.total)
            check_room(opt.dest_dir, dl.size - len(chunks) * dl.chunk_size)
            self._reader = _open_reader(partial.temp_path)
        except (OSError, UnsafeName) as err:
            return dl.local_error(f"temporary file in {opt.dest_dir}: {err}")
        for index in chunks:
            self._seeder.chunk_held(index)
        return dl.partial_opened(chunks, time.monotonic())

    def _check(self, cmd: steps.CheckPiece) -> list[Any]:
        ok = hashlib.sha256(self.payload[0]).hexdigest() == cmd.digest
        return self._core.piece_checked(cmd.index, ok, time.monotonic())

    def _write(self, cmd: steps.WriteChunk) -> list[Any]:
        partial, dl = self._partial, self._core
        assert partial is not None
        try:
            partial.write_at(cmd.offset, self.payload[0])
        except OSError as err:
            return dl.local_error(f"cannot write {partial.temp_path}: {err}")
        caused = dl.chunk_written(cmd.index, time.monotonic())
        if self._seeder is not None:
            self._seeder.chunk_held(cmd.index)
        if self._opt.on_progress is not None:
            done = dl.from_owner + sum(dl.from_peers.values())
            run_callback(self._opt.on_progress, Progress(dl.name, done, dl.size, self._opt.owner))
        return caused

    def _commit(self, cmd: steps.Commit) -> list[Any]:
        dl, now = self._core, time.monotonic()
        if self._existing is not None:
            try:
                same = file_digest(self._existing) == cmd.digest
            except OSError as err:
                return dl.local_error(f"cannot read {self._existing}: {err}")
            if not same:           # not the owner's file: fetch it after all, next run
                return dl.commit_failed(f"{self._existing} differs from the owner's file")
            self._result = self._done(self._existing, cmd, now)
            return dl.committed()
        partial = self._partial
        assert partial is not None
        held.remove(partial.temp_path)
        try:
            path = partial.commit(cmd.size, cmd.digest)
        except IntegrityError as err:
            self._drop(partial)
            return dl.commit_failed(err.reason)
        except (OSError, UnsafeName) as err:
            self._drop(partial)
            return dl.local_error(f"cannot put {partial.name} in place: {err}")
        self._partial = None
        self._result = self._done(path, cmd, now)
        return dl.committed()

    def _done(self, path: str, cmd: steps.Commit, now: float) -> DownloadResult:
        dl = self._core
        peers = tuple(sorted((peer.partition("/")[0], count)
                             for peer, count in dl.from_peers.items()))
        moved = dl.from_owner + sum(dl.from_peers.values())
        return DownloadResult(dl.name, path, cmd.size, cmd.digest, self._opt.owner, moved,
                              now - self._started, "swarm", peers, self._note(moved, peers))

    def _note(self, moved: int, peers: tuple[tuple[str, int], ...]) -> str:
        """Why no peer served this download, if none did (empty when one did)."""
        if peers or not moved:
            return ""
        if self._core.endpoint is None:
            return ("every byte came from the owner: this site listens nowhere peers can "
                    "reach, so it takes only what the owner serves it (bind to a TCP endpoint "
                    "to pull with peers)")
        unreachable = len(self._dialer.unreachable)
        why = (f" ({unreachable} could not be reached)" if unreachable else "")
        return f"every byte came from the owner: no peer served a chunk in time{why}"

    def _finish(self, cmd: steps.Finish) -> None:
        if cmd.state is steps.DownloadState.DONE and self._result is not None:
            self._future.set_result(self._result)
            if self._core.seeds and self._seeder is not None:
                return                    # serve peers until the share ends
            self.stop()
            return
        failure = self._failure_of(cmd)
        note = self._keep_or_discard(failure)
        if not self._future.done():
            ours = failure in (Failure.LOCAL, Failure.ABORTED)
            site = self.site.name if ours else self._opt.owner
            self._future.set_exception(failure_error(failure, cmd.detail, site, note))
        self.stop()

    def _failure_of(self, cmd: steps.Finish) -> Failure:
        if cmd.state is steps.DownloadState.ABORTED:
            return Failure.ABORTED
        if self._refusal is not None:
            return self._refusal
        for start, failure in _FAILURES:
            if cmd.detail.startswith(start):
                return failure
        return Failure.PROTOCOL

    def _keep_or_discard(self, failure: Failure) -> str:
        partial = self._partial
        if partial is None:
            return ""
        self._partial = None
        if failure in (Failure.INTEGRITY, Failure.CHANGED, Failure.LOCAL, Failure.ABORTED,
                       Failure.REFUSED) or not self._core.held:
            held.remove(partial.temp_path)
            self._drop(partial)
            return ""
        self._save_held(partial)
        partial.close()
        return (f"the chunks received are kept in {self._opt.dest_dir}: download the same "
                f"file into it again to resume")

    def _serve(self, cmd: ReadPiece) -> list[Any]:
        seeder = self._seeder
        assert seeder is not None
        try:
            data = os.pread(self._reader, cmd.length, cmd.offset)
        except OSError as err:
            return seeder.read_failed(cmd.to, cmd.index, str(err), time.monotonic())
        if len(data) != cmd.length:
            return seeder.read_failed(cmd.to, cmd.index, "short read", time.monotonic())
        self._tell(cmd.to, Piece(self._opt.rid, cmd.index), (data,))
        return seeder.piece_read(cmd.to, cmd.index, cmd.length, time.monotonic())

    # -- housekeeping

    def _save_held(self, partial: Optional[PartialFile] = None) -> None:
        partial = partial or self._partial
        self._saved_at = time.monotonic()
        if partial is None or self._core.held == self._saved:
            return
        try:
            held.save(partial.temp_path, self._core.total, self._core.held)
            self._saved = self._core.held
        except OSError as err:
            log.info("swarm: cannot save which chunks %s holds: %s", partial.temp_path, err)

    def _drop(self, partial: PartialFile) -> None:
        if not partial.discard():
            remove_later(self.site, partial.temp_path)

    def _close(self) -> None:
        if self._partial is not None:
            self._save_held()
            self._partial.close()
            self._partial = None
        if self._reader >= 0:
            os.close(self._reader)
            self._reader = -1


def _open_reader(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
