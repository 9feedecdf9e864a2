"""The recipient's actor shell of pull: one :class:`DownloadActor` per download.

:class:`DownloadActor` (``"zfs.dl.<hex>"``) is a thin shell around
:class:`zfs.protocol.pull.Download`. It keeps a window of chunk requests in flight to
the owner's :class:`~zfs.pull_owner.OwnerActor`, writes into a
:class:`~zfs.files.PartialFile` keyed by the owner's resume key (the same for the same
file shared again, so a restarted download finds and checks its bytes even under a new
RID), verifies and renames. ``info`` is an ask, so a site with no owner actor fails the
download at once; the other requests are tells. :func:`download` and
:func:`download_async` start one.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional

import pykka

import actors
from zfs.errors import (FileChanged, IntegrityError, InsecureLink, TransactionExpired,
                        TransferAborted, UnknownReference, UnsafeName, ZfsError)
from zfs.files import PartialFile, file_digest
from zfs.protocol import pull as core
from zfs.callbacks import run_callback
from zfs.pull_owner import MAX_CHUNK_SIZE, OWNER
from zfs.supervisor import Tick, ensure_supervisor, watch_time

log = logging.getLogger(__name__)


class Progress(NamedTuple):
    """How far a download is: bytes held of ``total``, from ``peer`` (the owner)."""

    name: str
    bytes_done: int
    total: int
    peer: str


@dataclass(frozen=True, slots=True)
class _DownloadOptions:
    owner: str
    rid: str
    location: str
    window_chunks: int
    chunk_size: int
    per_request_timeout: float
    retries: int
    abort_signal: Any
    on_progress: Optional[Callable[[Progress], Any]]


@dataclass(frozen=True, slots=True)
class _Begin:
    pass


@dataclass(frozen=True, slots=True)
class _InfoAnswer:
    done: Future[Any]


# Failures after which the bytes on disk are still good for a resume (a link cut, the
# owner gone for a while); after any other end the temporary file is deleted.
_KEEP_PARTIAL = frozenset({core.Failure.OWNER_LOST, core.Failure.NO_ANSWER})
# Endings the owner cannot (or need not) hear about.
_NO_REPORT = frozenset({core.Failure.OWNER_LOST, core.Failure.UNKNOWN, core.Failure.EXPIRED})


def _error(cmd: core.Finish, owner: str) -> ZfsError:
    """The exception a failed download raises, named for the caller's next move."""
    failure, detail = cmd.failure, cmd.detail
    if failure is core.Failure.UNKNOWN:
        return UnknownReference(f"{owner}: no such RID")
    if failure is core.Failure.EXPIRED:
        return TransactionExpired(f"{owner}: the transaction of this RID expired or ended")
    if failure is core.Failure.CHANGED:
        return FileChanged(f"{owner}: the shared file changed or was removed")
    if failure is core.Failure.INTEGRITY:
        return IntegrityError(detail, owner)
    if failure is core.Failure.UNSAFE_NAME:
        return UnsafeName(f"{owner}: {detail}")
    if failure is core.Failure.ABORTED:
        return TransferAborted("aborted by the caller", "")
    if failure is core.Failure.LOCAL_ERROR:
        return TransferAborted(detail, "")
    return TransferAborted(detail or str(failure), owner)


class DownloadActor(actors.Actor):
    """Downloads one RID into ``location``; resolves ``future`` with the final path.

    Started by :func:`download_async`; it stops itself when the download ends.
    """

    def __init__(self, options: _DownloadOptions, future: Future[str]) -> None:
        super().__init__()
        self._opt = options
        self._future = future
        self._owner = f"{options.owner}/{OWNER}"
        self._core = core.Download(window_chunks=options.window_chunks,
                                   chunk_size=options.chunk_size,
                                   request_timeout=options.per_request_timeout,
                                   retries=options.retries)
        self._partial: Optional[PartialFile] = None
        self._path = ""
        self._key = ""
        self._abort = options.abort_signal

    def on_start(self) -> None:
        self.site.watch_peers(self.actor_ref)
        watch_time(self.site, self.name)

    def on_stop(self) -> None:
        self._give_up(TransferAborted("the download's site stopped", self.site.name))

    def on_failure(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._give_up(TransferAborted(f"download crashed: {exc!r}", self.site.name))

    def _give_up(self, error: ZfsError) -> None:
        # The temporary file stays: a later run into the same folder may resume it.
        if not self._future.done():
            self._future.set_exception(error)

    def on_receive(self, message: Any) -> Any:
        if type(message) is dict:
            if message.get("rid") == self._opt.rid:
                self._on_reply(message)
        elif isinstance(message, Tick):
            cmds = (self._core.abort_requested() if self._aborted()
                    else self._core.time_passed(message.now))
            if cmds:
                log.info("download of %s, on a tick: %s", self._opt.rid, cmds)
            self._run(cmds)
        elif isinstance(message, _InfoAnswer):
            self._run(self._on_info_answer(message.done))
        elif isinstance(message, _Begin):
            self._run(self._core.abort_requested() if self._aborted()
                      else self._core.started(time.monotonic()))
        elif isinstance(message, actors.PeerDown) and message.name == self._opt.owner:
            self._run(self._core.owner_gone(time.monotonic(), f"owner lost: {message.reason}"))
        elif isinstance(message, actors.PeerUp) and message.name == self._opt.owner:
            self._run(self._core.owner_back(time.monotonic()))
        return None

    def _aborted(self) -> bool:
        return self._abort is not None and bool(self._abort.is_set())

    def _on_reply(self, msg: dict[str, Any]) -> None:
        op, now, dl = msg.get("op"), time.monotonic(), self._core
        try:
            if op == "chunk":
                if self._aborted():
                    cmds = dl.abort_requested()
                elif len(self.payload) != 1:
                    cmds = dl.refused("bad_reply", "chunk without exactly one payload frame")
                else:
                    cmds = dl.chunk_received(int(msg["offset"]), len(self.payload[0]), now)
            elif op == "info":
                cmds = dl.info_received(msg["name"], msg["size"], str(msg["key"]), now)
            elif op == "prefix":
                cmds = dl.prefix_received(int(msg["length"]), str(msg["digest"]), now)
            elif op == "digest":
                cmds = dl.digest_received(str(msg["digest"]))
            elif op == "refused":
                cmds = dl.refused(str(msg.get("refusal")))
            else:
                return
        except (KeyError, TypeError, ValueError) as err:
            cmds = dl.refused("bad_reply", f"malformed {op} reply: {err}")
        self._run(cmds)

    def _run(self, cmds: list[core.DownloadCommand]) -> None:
        queue = deque(cmds)
        while queue:
            cmd = queue.popleft()
            if self._core.finished and not isinstance(cmd, core.Finish):
                continue                     # e.g. requests queued before a write failed
            if isinstance(cmd, core.RequestChunk):
                queue.extend(self._request({"op": "chunk", "offset": cmd.offset,
                                            "length": cmd.length, "mark": cmd.mark}))
            elif isinstance(cmd, core.WriteChunk):
                queue.extend(self._write(cmd.offset))
            elif isinstance(cmd, core.RequestInfo):
                queue.extend(self._ask_info())
            elif isinstance(cmd, core.RequestPrefix):
                queue.extend(self._request({"op": "prefix", "length": cmd.length}))
            elif isinstance(cmd, core.ReportMark):
                queue.extend(self._request({"op": "mark", "mark": cmd.mark}))
            elif isinstance(cmd, core.RequestDigest):
                queue.extend(self._request({"op": "digest"}))
            elif isinstance(cmd, core.Finish):
                self._finish(cmd)
            else:
                queue.extend(self._on_disk(cmd))

    def _request(self, body: dict[str, Any]) -> list[core.DownloadCommand]:
        body["rid"] = self._opt.rid
        try:
            self.site.tell(self._owner, body)
        except actors.PeerLost as err:       # a link down: wait for it to come back
            return self._core.owner_gone(time.monotonic(), f"cannot reach "
                                         f"{self._opt.owner}: {err}")
        except actors.ActorsError as err:
            return self._core.owner_lost(f"cannot reach {self._opt.owner}: {err}")
        return []

    def _ask_info(self) -> list[core.DownloadCommand]:
        """Ask (not tell) for the info: a site without an owner then answers at once."""
        try:
            answer = self.site.ask(self._owner, {"op": "info", "rid": self._opt.rid},
                                   timeout=self._opt.per_request_timeout, block=False)
        except actors.ActorsError as err:
            return self._core.owner_lost(f"cannot reach {self._opt.owner}: {err}")
        me = self.actor_ref

        def forward(done: Future[Any]) -> None:
            try:
                me.tell(_InfoAnswer(done))
            except pykka.ActorDeadError:
                pass
        answer.add_done_callback(forward)
        return []

    def _on_info_answer(self, done: Future[Any]) -> list[core.DownloadCommand]:
        dl = self._core
        try:
            body = done.result()
        except actors.UnknownActor:
            return dl.refused("unknown", f"{self._opt.owner} shares nothing")
        except actors.AskTimeout:
            return []                        # the core resends on its own deadline
        except actors.ActorsError as err:
            return dl.owner_lost(str(err))
        if type(body) is dict and body.get("rid") == self._opt.rid:
            self._on_reply(body)
            return []
        return dl.refused("bad_reply", f"malformed info answer {body!r}"[:200])

    def _write(self, offset: int) -> list[core.DownloadCommand]:
        assert self._partial is not None
        try:
            self._partial.write_at(offset, self.payload[0])
        except OSError as err:
            return self._core.local_error(f"cannot write {self._partial.temp_path}: {err}")
        if self._opt.on_progress is not None:
            dl = self._core
            run_callback(self._opt.on_progress, Progress(dl.name, dl.bytes_done, dl.size,
                                                  self._opt.owner))
        return []

    def _on_disk(self, cmd: core.DownloadCommand) -> list[core.DownloadCommand]:
        """Carry out the commands that touch our temporary file."""
        dl, now = self._core, time.monotonic()
        try:
            if isinstance(cmd, core.OpenPartial):
                self._key = cmd.key
                self._partial = PartialFile(self._opt.location, cmd.name, key=cmd.key)
                return dl.partial_opened(self._partial.existing_size, now)
            assert self._partial is not None
            if isinstance(cmd, core.DigestPrefix):
                return dl.prefix_digested(file_digest(self._partial.temp_path), now)
            if isinstance(cmd, core.StartOver):
                self._partial.discard()
                self._partial = PartialFile(self._opt.location, dl.name, key=self._key)
                return []
            if isinstance(cmd, core.Commit):
                try:
                    path = self._partial.commit(cmd.size, cmd.digest)
                except IntegrityError as err:
                    return dl.commit_failed(err.reason)
                self._partial = None
                self._path = path
                return dl.committed()
        except (OSError, UnsafeName) as err:
            return dl.local_error(f"temporary file in {self._opt.location}: {err}")
        raise AssertionError(f"unexpected command {cmd!r}")

    def _finish(self, cmd: core.Finish) -> None:
        status = {core.DlState.DONE: "success", core.DlState.ABORTED: "aborted"}.get(
            cmd.state, "failed")
        if cmd.failure not in _NO_REPORT:
            try:
                self.site.tell(self._owner, {"op": "report", "rid": self._opt.rid,
                                             "status": status})
            except actors.ActorsError:
                pass
        if self._partial is not None and cmd.failure not in _KEEP_PARTIAL:
            self._partial.discard()
        if cmd.state is core.DlState.DONE:
            self._future.set_result(self._path)
        elif not self._future.done():
            self._future.set_exception(_error(cmd, self._opt.owner))
        self.stop()


def download_async(site: Any, owner: str, rid: str, location: Optional[str] = None, *,
                   window_chunks: int = 8, chunk_size: int = 1 << 20,
                   per_request_timeout: float = 10.0, retries: int = 3,
                   abort_signal: Any = None,
                   on_progress: Optional[Callable[[Progress], Any]] = None,
                   secure: bool = False) -> Future[str]:
    """Start downloading ``rid`` from site ``owner``; see :func:`download`.

    Returns:
        A future of the final path; its exception is one of :func:`download`'s errors.
    """
    if secure and not site.is_secure:
        raise InsecureLink(f"site {site.name} has no CURVE security configured")
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be in 1..{MAX_CHUNK_SIZE}, not {chunk_size}")
    location = os.fspath(location) if location is not None else tempfile.gettempdir()
    os.makedirs(location, exist_ok=True)
    ensure_supervisor(site)
    future: Future[str] = Future()
    options = _DownloadOptions(owner, rid, location, window_chunks, chunk_size,
                               per_request_timeout, retries, abort_signal, on_progress)
    ref = site.spawn(DownloadActor, f"zfs.dl.{secrets.token_hex(8)}", options, future)
    # Begin only once spawn has returned: before that the site may not yet know the
    # actor's name and would drop the owner's first answer. And requests must leave
    # from on_receive, where the site sends them as from the actor's own address.
    ref.tell(_Begin())
    return future


def download(site: Any, owner: str, rid: str, location: Optional[str] = None, *,
             window_chunks: int = 8, chunk_size: int = 1 << 20,
             per_request_timeout: float = 10.0, retries: int = 3, abort_signal: Any = None,
             on_progress: Optional[Callable[[Progress], Any]] = None,
             secure: bool = False) -> str:
    """Download the file ``rid`` shared by site ``owner`` into folder ``location``.

    A download interrupted earlier into the same folder resumes after its bytes are
    checked against the owner's. Requests that time out are sent again ``retries``
    times; ``abort_signal.is_set()`` stops it within a tick.

    Returns:
        The final path, ``location/<owner's file name>``.

    Raises:
        UnknownReference, TransactionExpired, FileChanged, IntegrityError,
        TransferAborted (owner lost, no answer, aborted), InsecureLink.
    """
    return download_async(site, owner, rid, location, window_chunks=window_chunks,
                          chunk_size=chunk_size, per_request_timeout=per_request_timeout,
                          retries=retries, abort_signal=abort_signal,
                          on_progress=on_progress, secure=secure).result()
