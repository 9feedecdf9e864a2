"""The owner's actor shell of pull: serves shared files to any site that holds their RIDs.

:class:`OwnerActor` (``"zfs.owner"``, one per site, supervised) is a thin shell around
:class:`zfs.protocol.pull.Shares`. It answers requests from any site by a tell back to
the requesting actor: the chunk's bytes travel as one raw payload frame, read with
``os.pread``. Digests are computed on a small thread pool and sent from there when
ready, so the actor never waits for the disk beyond a chunk.

Requests are small msgpack dicts with an ``op``: ``info`` (an ask, answered by the
return value), then tells ``prefix``, ``chunk`` (with ``mark``, the recipient's lowest
missing byte), ``digest``, ``report``; answered by tells ``prefix``, ``chunk`` (+ the
bytes as one payload frame), ``digest``, ``refused``. The app's calls reach it through
:mod:`zfs.pull_transaction`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import actors
from zfs.callbacks import run_callback
from zfs.errors import FileChanged, SourceMissing, TransactionExpired, ZfsError
from zfs.files import ChunkSource, Digest, digest_range
from zfs.protocol import pull as core
from zfs.supervisor import Tick, report_crash, unsupervise, watch_time

log = logging.getLogger(__name__)

OWNER = "zfs.owner"
MAX_CHUNK_SIZE = 8 << 20
#: Chunk bytes an owner lets be in flight to all its recipients together (plus one chunk
#: per download): what bounds its memory, whatever the number of recipients.
MAX_INFLIGHT_BYTES = 16 << 20
_DIGEST_BLOCK = 1 << 20

TimeoutCallback = Callable[[str, list[str]], Any]
DownloadedCallback = Callable[[str, str, str, str], Any]


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


def _in_the_background() -> None:
    """Lower this thread's priority: hashing a shared file must not slow the transfers.

    Linux applies nice per thread, so the digest threads yield the cores to the
    threads moving chunks. Elsewhere this is a no-op.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def _digest_of(path: str, size: int, mtime_ns: int, length: int) -> str:
    """Digest the first ``length`` bytes, refusing a file that is not the one shared."""
    _check_same(path, size, mtime_ns)
    with open(path, "rb", buffering=0) as f:
        digest, got = digest_range(f.fileno(), length, _DIGEST_BLOCK)
    if got < length:
        raise FileChanged(f"{path!r} shrank while being read")
    _check_same(path, size, mtime_ns)
    return digest


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
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="zfs.owner.digest",
                                        initializer=_in_the_background)

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
            elif op == "mark":
                cmds = shares.mark_reported(rid, site, to, int(msg["mark"]), now)
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
                run_callback(shared.on_downloaded, cmd.rid, cmd.site, cmd.status.value, cmd.name)
        elif isinstance(cmd, core.TimedOut):
            callback = state.on_timeout.pop(cmd.tx_id, None)
            if callback is not None:
                run_callback(callback, cmd.tx_id, list(cmd.names))
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
        if (source.size, source.mtime_ns) != (shared.size, shared.mtime_ns):
            source.close()
            raise FileChanged(f"{shared.path!r} changed since it was shared")
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

