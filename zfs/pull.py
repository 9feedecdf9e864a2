"""Pull: an owner shares files by RID; each recipient downloads them at its own pace.

Two thin actor shells around the cores of :mod:`zfs.protocol.pull`:

- :class:`OwnerActor` (``"zfs.owner"``, one per site, supervised) answers requests from
  any site by a tell back to the requesting actor: the chunk's bytes travel as one raw
  payload frame, read with ``os.pread``. Digests are computed on a small thread pool
  and sent from there when ready, so the actor never waits for the disk beyond a chunk.
- :class:`DownloadActor` (``"zfs.dl.<hex>"``, one per download) keeps a window of chunk
  requests in flight, writes into a :class:`~zfs.files.PartialFile` keyed by the owner's
  resume key (the same for the same file shared again, so a restarted download finds
  and checks its bytes even under a new RID), verifies and renames.

Wire messages are small msgpack dicts with an ``op``. ``info`` is an ask, so a site with
no owner actor fails the download at once; the rest are tells both ways: to the owner
``prefix``, ``chunk`` (with ``mark``, the recipient's lowest missing byte), ``digest``,
``report``; back ``prefix``, ``chunk`` (+ the bytes as one payload frame), ``digest``,
``refused``.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import time
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Optional

import pykka

import actors
from zfs.errors import (FileChanged, IntegrityError, InsecureLink, SourceMissing,
                        TransactionExpired, TransferAborted, UnknownReference, UnsafeName,
                        ZfsError)
from zfs.files import ChunkSource, Digest, PartialFile, check_name, file_digest
from zfs.protocol import pull as core
from zfs.supervisor import (Tick, ensure_supervisor, report_crash, revive, supervise,
                            unsupervise, watch_time)

log = logging.getLogger(__name__)

OWNER = "zfs.owner"
MAX_CHUNK_SIZE = 8 << 20
#: Chunk bytes an owner lets be in flight to all its recipients together (plus one chunk
#: per download): what bounds its memory, whatever the number of recipients.
MAX_INFLIGHT_BYTES = 16 << 20
_DIGEST_BLOCK = 1 << 20
_LOCAL_TIMEOUT = 10.0

TimeoutCallback = Callable[[str, list[str]], Any]
DownloadedCallback = Callable[[str, str, str, str], Any]


class Progress(NamedTuple):
    """How far a download is: bytes held of ``total``, from ``peer`` (the owner)."""

    name: str
    bytes_done: int
    total: int
    peer: str


# ---- the owner ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _OpenTx:
    tx_id: str
    timeout: float
    on_timeout: Optional[TimeoutCallback]


@dataclass(frozen=True, slots=True)
class _AddFile:
    tx_id: str
    rid: str
    path: str
    name: str
    size: int
    mtime_ns: int
    on_downloaded: Optional[DownloadedCallback]


@dataclass(frozen=True, slots=True)
class _EndTx:
    tx_id: str


@dataclass(frozen=True, slots=True)
class _Stats:
    pass


@dataclass(frozen=True, slots=True)
class _FindTx:
    tx_id: str


@dataclass(slots=True)
class _Shared:
    path: str
    size: int
    mtime_ns: int
    digest: Future[str]
    on_downloaded: Optional[DownloadedCallback]


@dataclass(slots=True)
class OwnerState:
    """What an owner knows, kept apart from the actor so a restarted owner keeps serving."""

    shares: core.Shares = field(default_factory=lambda: core.Shares(MAX_CHUNK_SIZE,
                                                                   MAX_INFLIGHT_BYTES))
    on_timeout: dict[str, Optional[TimeoutCallback]] = field(default_factory=dict)
    files: dict[str, _Shared] = field(default_factory=dict)
    bytes_sent: int = 0
    chunks_sent: int = 0


def _digest_of(path: str, size: int, mtime_ns: int, length: int) -> str:
    """Digest the first ``length`` bytes, refusing a file that is not the one shared."""
    _check_same(path, size, mtime_ns)
    digest = Digest()
    block = memoryview(bytearray(_DIGEST_BLOCK))     # one buffer, reused: memory stays flat
    with open(path, "rb", buffering=0) as f:
        done = 0
        while done < length:
            got = os.preadv(f.fileno(), [block[:min(_DIGEST_BLOCK, length - done)]], done)
            if not got:
                raise FileChanged(f"{path!r} shrank while being read")
            digest.update(block[:got])
            done += got
    _check_same(path, size, mtime_ns)
    return digest.hexdigest()


def _resume_key(msg: _AddFile) -> str:
    """The same key for the same file shared again (new RID), so a download resumes.

    Two different files with one key cannot mix: a resume checks the bytes it holds
    against the owner's digest of them first.
    """
    identity = Digest()
    identity.update(f"{msg.path}\0{msg.size}\0{msg.mtime_ns}".encode("utf-8", "surrogateescape"))
    return identity.hexdigest()


def _check_same(path: str, size: int, mtime_ns: int) -> None:
    try:
        st = os.stat(path)
    except OSError as err:
        raise FileChanged(f"{path!r} is gone: {err.strerror}") from err
    if st.st_size != size or st.st_mtime_ns != mtime_ns:
        raise FileChanged(f"{path!r} changed since it was shared")


class OwnerActor(actors.Actor):
    """Serves the files of this site's transactions to any site that holds their RIDs.

    Args:
        state: the transactions and files (a restarted owner gets its predecessor's).
        max_open_files: open file handles kept (least recently used closed first).
    """

    def __init__(self, state: Optional[OwnerState] = None, max_open_files: int = 32) -> None:
        super().__init__()
        self._state = state if state is not None else OwnerState()
        self._sources: OrderedDict[str, ChunkSource] = OrderedDict()
        self._max_open = max_open_files
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="zfs.owner.digest")

    def on_start(self) -> None:
        watch_time(self.site, self.name)
        self.site.watch_peers(self.actor_ref)

    def on_stop(self) -> None:
        unsupervise(self.site, self.name)
        self._cleanup()

    def on_failure(self, exc_type: Any, exc: Any, tb: Any) -> None:
        report_crash(self.site, self.name, exc)
        self._cleanup()

    def _cleanup(self) -> None:
        for source in self._sources.values():
            source.close()
        self._sources.clear()
        self._pool.shutdown(wait=False)

    def on_receive(self, message: Any) -> Any:
        if type(message) is dict:
            return self._on_request(message)
        state = self._state
        if isinstance(message, Tick):
            self._run(state.shares.time_passed(message.now))
        elif isinstance(message, actors.PeerDown):
            self._run(state.shares.recipient_lost(message.name))
        elif isinstance(message, _OpenTx):
            state.shares.transaction_opened(message.tx_id, message.timeout, time.monotonic())
            state.on_timeout[message.tx_id] = message.on_timeout
        elif isinstance(message, _AddFile):
            return self._add(message)
        elif isinstance(message, _EndTx):
            self._run(state.shares.transaction_ended(message.tx_id, time.monotonic()))
            state.on_timeout.pop(message.tx_id, None)
        elif isinstance(message, _FindTx):
            return self.site if state.shares.transaction_files(message.tx_id) is not None else None
        elif isinstance(message, _Stats):
            return {"bytes_sent": state.bytes_sent, "chunks_sent": state.chunks_sent,
                    "bytes_in_flight": state.shares.in_flight.bytes,
                    "open_files": len(self._sources), "shared_files": len(state.files)}
        return None

    def _add(self, msg: _AddFile) -> str:
        try:
            self._state.shares.file_added(msg.tx_id, msg.rid, msg.name, msg.size,
                                          time.monotonic(), _resume_key(msg))
        except core.LocalProtocolError as err:
            raise TransactionExpired(str(err)) from None
        digest = self._pool.submit(_digest_of, msg.path, msg.size, msg.mtime_ns, msg.size)
        self._state.files[msg.rid] = _Shared(msg.path, msg.size, msg.mtime_ns, digest,
                                             msg.on_downloaded)
        return msg.rid

    def _on_request(self, msg: dict[str, Any]) -> Optional[dict[str, Any]]:
        """Answer a recipient's request; "info" (an ask) is answered by the return value."""
        to, rid, op = self.sender, msg.get("rid"), msg.get("op")
        if to is None or "/" not in to or type(rid) is not str:
            log.warning("pull request without an actor to answer (from %s) dropped", to)
            return None
        site, now, shares = to.partition("/")[0], time.monotonic(), self._state.shares
        try:
            if op == "chunk":
                cmds = shares.chunk_requested(rid, site, to, int(msg["offset"]),
                                              int(msg["length"]), int(msg["mark"]), now)
            elif op == "info":
                return _body(shares.info_requested(rid, site, to, now)[0])
            elif op == "prefix":
                cmds = shares.prefix_requested(rid, site, to, int(msg["length"]), now)
            elif op == "digest":
                cmds = shares.digest_requested(rid, site, to, now)
            elif op == "report":
                cmds = shares.download_reported(rid, site, to, core.Status(msg["status"]), now)
            else:
                raise ValueError(f"unknown op {op!r}")
        except (KeyError, TypeError, ValueError) as err:
            log.warning("bad pull request from %s: %s", to, err)
            return None
        self._run(cmds)
        return None

    def _run(self, cmds: list[core.OwnerCommand]) -> None:
        for cmd in cmds:
            if isinstance(cmd, core.SendChunk):
                self._send_chunk(cmd)
            elif isinstance(cmd, (core.SendInfo, core.Refuse)):
                self._tell(cmd.to, _body(cmd))
            elif isinstance(cmd, core.SendPrefixDigest):
                shared = self._state.files[cmd.rid]
                future = self._pool.submit(_digest_of, shared.path, shared.size,
                                           shared.mtime_ns, cmd.length)
                self._reply_when_done(future, cmd.to, {"op": "prefix", "rid": cmd.rid,
                                                       "length": cmd.length})
            elif isinstance(cmd, core.SendDigest):
                self._reply_when_done(self._state.files[cmd.rid].digest, cmd.to,
                                      {"op": "digest", "rid": cmd.rid})
            else:
                self._run_local(cmd)

    def _run_local(self, cmd: core.OwnerCommand) -> None:
        state = self._state
        if isinstance(cmd, core.Downloaded):
            shared = state.files.get(cmd.rid)
            if shared is not None and shared.on_downloaded is not None:
                _call(shared.on_downloaded, cmd.rid, cmd.site, cmd.status.value, cmd.name)
        elif isinstance(cmd, core.TimedOut):
            callback = state.on_timeout.pop(cmd.tx_id, None)
            if callback is not None:
                _call(callback, cmd.tx_id, list(cmd.names))
        elif isinstance(cmd, core.Released):
            state.files.pop(cmd.rid, None)
            source = self._sources.pop(cmd.rid, None)
            if source is not None:
                source.close()

    def _send_chunk(self, cmd: core.SendChunk) -> None:
        try:
            source = self._source(cmd.rid)
            data = source.read(cmd.offset, cmd.length)
            source.check_unchanged()        # after the read: these bytes are of the shared file
        except (ZfsError, OSError) as err:
            log.info("shared file of %s unusable: %s", cmd.rid, err)
            bad = self._sources.pop(cmd.rid, None)
            if bad is not None:
                bad.close()
            self._run(self._state.shares.source_changed(cmd.rid, cmd.to))
            return
        self._state.bytes_sent += len(data)
        self._state.chunks_sent += 1
        self._tell(cmd.to, {"op": "chunk", "rid": cmd.rid, "offset": cmd.offset}, (data,))

    def _source(self, rid: str) -> ChunkSource:
        source = self._sources.get(rid)
        if source is not None:
            self._sources.move_to_end(rid)
            return source
        shared = self._state.files[rid]
        try:
            source = ChunkSource(shared.path)
        except SourceMissing as err:
            raise FileChanged(str(err)) from err
        if source.size != shared.size:
            source.close()
            raise FileChanged(f"{shared.path!r} changed since it was shared")
        try:
            _check_same(shared.path, shared.size, shared.mtime_ns)
        except FileChanged:
            source.close()
            raise
        self._sources[rid] = source
        while len(self._sources) > self._max_open:
            self._sources.popitem(last=False)[1].close()
        return source

    def _reply_when_done(self, future: Future[str], to: str, body: dict[str, Any]) -> None:
        def reply(done: Future[str]) -> None:
            try:
                self._tell(to, dict(body, digest=done.result()))
            except FileChanged:
                self._tell(to, {"op": "refused", "rid": body["rid"], "refusal": "changed"})
            except Exception:  # noqa: BLE001 - a pool thread must not die silently
                log.exception("digest for %s failed", body["rid"])
                self._tell(to, {"op": "refused", "rid": body["rid"], "refusal": "changed"})
        future.add_done_callback(reply)

    def _tell(self, to: str, body: dict[str, Any], payload: tuple[Any, ...] = ()) -> None:
        try:
            self.site.tell(to, body, payload=payload)
        except actors.ActorsError as err:
            log.debug("pull reply to %s not sent: %s", to, err)


def _body(cmd: core.OwnerCommand) -> dict[str, Any]:
    """The wire body of an info answer or a refusal."""
    if isinstance(cmd, core.SendInfo):
        return {"op": "info", "rid": cmd.rid, "name": cmd.name, "size": cmd.size,
                "key": cmd.key}
    assert isinstance(cmd, core.Refuse), cmd
    return {"op": "refused", "rid": cmd.rid, "refusal": cmd.refusal.value}


def _call(callback: Callable[..., Any], *args: Any) -> None:
    """Run an app callback; its failure is logged, never the owner's crash."""
    try:
        callback(*args)
    except Exception:  # noqa: BLE001
        log.exception("pull callback %r failed", callback)


def _owner(site: Any) -> Any:
    """Return the site's owner actor, spawning it (and the supervisor) on first use."""
    ref = site.actor(OWNER)
    if ref is not None:
        return ref
    if revive(site, OWNER):                  # crashed, not yet restarted: keep its state
        ref = site.actor(OWNER)
        if ref is not None:
            return ref
    state = OwnerState()
    try:
        ref = site.spawn(OwnerActor, OWNER, state)
    except ValueError:                       # another thread won the race
        ref = site.actor(OWNER)
        if ref is None:
            raise
        return ref
    supervise(site, OWNER, OwnerActor, state)
    return ref


def _ask_owner(site: Any, message: Any) -> Any:
    return _owner(site).ask(message, timeout=_LOCAL_TIMEOUT)


class Transaction:
    """A set of shared files that lives while recipients keep downloading.

    Made by :func:`share`; ``Transaction(site, tx_id)`` is a handle to an open one.
    """

    def __init__(self, site: Any, tx_id: str) -> None:
        self.site = site
        self.tx_id = tx_id

    @staticmethod
    def find(tx_id: str) -> Transaction:
        """Return a handle to the open transaction ``tx_id`` of any site in this process.

        For callers that hold a transaction id but not its site (FLARE's ``add_file``);
        it asks each owner actor, so no registry of our own is kept.

        Raises:
            TransactionExpired: no owner holds an open transaction of that id.
        """
        for ref in pykka.ActorRegistry.get_by_class(OwnerActor):
            try:
                site = ref.ask(_FindTx(tx_id), timeout=_LOCAL_TIMEOUT)
            except pykka.ActorDeadError:
                continue
            if site is not None:
                return Transaction(site, tx_id)
        raise TransactionExpired(f"no open transaction {tx_id!r} in this process")

    def add_file(self, path: str | os.PathLike[str],
                 on_downloaded: Optional[DownloadedCallback] = None) -> str:
        """Share the file at ``path``; return its RID.

        ``on_downloaded(rid, to_site, status, file_name)`` is called once per recipient
        site, status ``"success"``, ``"failed"`` or ``"aborted"``.

        Raises:
            SourceMissing: no readable regular file at ``path``.
            UnsafeName: its base name cannot travel as a file name.
            TransactionExpired: the transaction timed out or was closed.
        """
        path = os.path.abspath(os.fspath(path))
        try:
            st = os.stat(path)
        except OSError as err:
            raise SourceMissing(f"cannot share {path!r}: {err.strerror}") from err
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise SourceMissing(f"not a readable regular file: {path!r}")
        name = check_name(os.path.basename(path))
        rid = secrets.token_urlsafe(24)
        return str(_ask_owner(self.site, _AddFile(self.tx_id, rid, path, name, st.st_size,
                                                  st.st_mtime_ns, on_downloaded)))

    def close(self) -> None:
        """End the transaction now: its RIDs stop working ("expired"); no timeout callback."""
        _ask_owner(self.site, _EndTx(self.tx_id))

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def share(site: Any, timeout: float = 60.0,
          on_timeout: Optional[TimeoutCallback] = None) -> Transaction:
    """Open a transaction on ``site``; add files to it with :meth:`Transaction.add_file`.

    Args:
        timeout: seconds without any recipient activity on any of its files after which
            it ends; ``on_timeout(tx_id, file_names)`` is then called once.
    """
    tx_id = secrets.token_urlsafe(24)
    _ask_owner(site, _OpenTx(tx_id, float(timeout), on_timeout))
    return Transaction(site, tx_id)


def owner_stats(site: Any) -> dict[str, int]:
    """Counters of the site's owner: bytes and chunks sent, files open and shared."""
    return dict(_ask_owner(site, _Stats()))



# ---- the recipient --------------------------------------------------------------

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
_ENDED = frozenset({core.DlState.DONE, core.DlState.FAILED, core.DlState.ABORTED})
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
            self._run(self._core.owner_lost(f"owner lost: {message.reason}"))
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
            if self._core.state in _ENDED and not isinstance(cmd, core.Finish):
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
            _call(self._opt.on_progress, Progress(dl.name, dl.bytes_done, dl.size,
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
    if secure and getattr(getattr(site, "options", None), "curve", None) is None:
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
