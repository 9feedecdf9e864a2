"""The owner's actor shell of pull: serves shared files to any site that holds their RIDs.

:class:`OwnerActor` (``"zfs.owner"``, one per site, supervised) drives
:class:`zfs.protocol.pull.owner.Shares`. It answers requests from any site by a tell
back to the requesting actor (an ``InfoRequest`` is an ask, answered by the return
value): a chunk's bytes travel as one raw payload frame, read with ``os.pread``.
Digests are computed on a small thread pool and sent from there when ready, so the
actor never waits for the disk beyond a chunk. The app's calls reach it through
:mod:`zfs.pull.transaction`.

A shared tree (a folder) is served the same way: its RID's stream is its files end to
end, read by a :class:`~zfs.tree.source.TreeSource`; its manifest is held in memory and
served by pages, and its per-file digests are computed once, on the pool, when it is
added (a recipient asks for them to check what it holds and what it fetched).

A file pulled with peers (``download(..., swarm=True)``) is admitted here like any
request, then handed to :class:`~zfs.swarm.tracker.SwarmTrackers`, which points each
recipient at peers holding the chunks it needs and serves the rest itself.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Optional

import actors
from zfs.errors import FileChanged, SourceMissing, TransactionExpired, ZfsError
from zfs.buffers import BufferPool
from zfs.files import ChunkSource
from zfs.protocol import wire
from zfs.protocol.errors import Failure, LocalProtocolError, RemoteProtocolError
from zfs.protocol.pull import owner as core
from zfs.protocol.pull import serving
from zfs.protocol.swarm import pullcodec
from zfs.protocol.swarm.wire import Join, Leave, PullMessage
from zfs.pull.book import (MAX_INFLIGHT_BYTES, OwnerState, _AddFile, _Bwlimit, _EndTx,
                           _FindTx, _OpenTx, _resume_key, _Shared, _Stats, _TreeStream)
from zfs.pull.digests import (digest_of, digest_of_digests, in_the_background, range_digest,
                              tree_digests)
from zfs.shell import Paced, PaceWake, Shell, run_callback, tell_or_log
from zfs.supervisor import Tick, report_crash, unsupervise, watch_time
from zfs.swarm.tracker import OwnerPiece, SharedFile, SwarmTrackers

log = logging.getLogger(__name__)

#: The bucket of a capped owner (``share(..., bwlimit=)``): one default chunk.
_BWLIMIT_BURST = 1 << 20

class OwnerActor(Shell):
    """Serves the files of this site's transactions to any site that holds their RIDs.

    Args:
        state: the transactions and files (a restarted owner gets its predecessor's).
        max_open_files: open file handles kept (least recently used closed first).
    """

    def __init__(self, state: Optional[OwnerState] = None, max_open_files: int = 32) -> None:
        super().__init__()
        self._state = state if state is not None else OwnerState()
        self._sources: OrderedDict[str, ChunkSource | _TreeStream] = OrderedDict()
        self._max_open = max_open_files
        # Chunks are read into buffers used again once ZeroMQ has sent them (zfs.buffers);
        # 1 MiB ones, the default chunk size (larger chunks are read into fresh memory).
        self._buffers = BufferPool(1 << 20, keep=2 * (MAX_INFLIGHT_BYTES >> 20) + 8)
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="zfs.owner.digest",
                                        initializer=in_the_background)
        shares = self._state.shares
        self._paced = Paced(self.actor_ref, self._state.bwlimit, _BWLIMIT_BURST)
        self._swarm = SwarmTrackers(self._read_for_swarm, self._tell_body, self._pool,
                                    self._stopping, pace=self._pace_piece)
        self.receives = {
            wire.InfoRequest: self._on_info,
            wire.PrefixRequest: lambda m: self._request(m, shares.prefix_requested, m.length),
            wire.ChunkRequest: lambda m: self._request(m, shares.chunk_requested, m.offset,
                                                       m.length, m.mark),
            wire.MarkReport: lambda m: self._request(m, shares.mark_reported, m.mark),
            wire.DigestRequest: lambda m: self._request(m, shares.digest_requested),
            wire.DoneReport: lambda m: self._request(m, shares.download_reported, m.status),
            wire.MetaRequest: lambda m: self._request(m, shares.meta_requested, m.section,
                                                      m.offset, m.length),
            wire.RangeDigestRequest: lambda m: self._request(
                m, shares.range_digest_requested, m.offset, m.length),
            Tick: self._on_tick, actors.PeerDown: self._on_peer_down,
            _OpenTx: self._on_open_tx, _AddFile: self._add, _EndTx: self._on_end_tx,
            _FindTx: self._on_find_tx, _Stats: self._on_stats, _Bwlimit: self._on_bwlimit,
            PaceWake: lambda _: self.run(self._paced.woken(self._send_held_chunk)),
        }
        self.carries_out = {
            serving.SendChunk: lambda cmd: self._paced.carry_out(cmd, cmd.length,
                                                              self._send_held_chunk),
            serving.SendInfo: lambda cmd: self._tell(cmd.to, _answer(cmd)),
            serving.SendTreeInfo: lambda cmd: self._tell(cmd.to, _answer(cmd)),
            serving.SendMeta: self._send_meta, serving.SendRangeDigest: self._send_range_digest,
            serving.Refuse: lambda cmd: self._tell(cmd.to, _answer(cmd)),
            serving.SendPrefixDigest: self._send_prefix, serving.SendDigest: self._send_digest,
            serving.Downloaded: self._downloaded, serving.TimedOut: self._timed_out,
            serving.Released: self._released,
            serving.SiteCut: lambda cmd: log.warning(
                "pull: cut site %s: it held chunks for too long without confirming any",
                cmd.site),
        }

    def on_start(self) -> None:
        watch_time(self.site, self.name)
        self.site.watch_peers(self.actor_ref)

    def on_stop(self) -> None:
        unsupervise(self.site, self.name)
        self._swarm.close_all()
        self._cleanup()

    def on_receive(self, message: Any) -> Any:
        if not pullcodec.is_pull_swarm(message):
            return super().on_receive(message)
        try:
            decoded = pullcodec.decode(message)
        except RemoteProtocolError as err:
            self.on_bad_message(message, err)
            return None
        self._on_swarm(decoded)
        return None

    def _on_tick(self, tick: Tick) -> None:
        self.run(self._state.shares.time_passed(tick.now))
        self._swarm.time_passed(tick.now)

    def _on_peer_down(self, event: actors.PeerDown) -> None:
        self.run(self._state.shares.recipient_lost(event.name))
        self._swarm.site_lost(event.name, time.monotonic())

    def on_failure(self, exc_type: Any, exc: Any, tb: Any) -> None:
        report_crash(self.site, self.name, exc)
        self._cleanup(stop_digests=False)   # the restarted owner keeps its state's digests

    def _cleanup(self, stop_digests: bool = True) -> None:
        self._paced.stop()
        for source in self._sources.values():
            source.close()
        self._sources.clear()
        if stop_digests:
            self._stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=stop_digests)

    def _on_open_tx(self, message: _OpenTx) -> None:
        self._state.shares.transaction_opened(message.tx_id, message.timeout, time.monotonic())
        self._state.on_timeout[message.tx_id] = message.on_timeout

    def _on_end_tx(self, message: _EndTx) -> None:
        self.run(self._state.shares.transaction_ended(message.tx_id, time.monotonic()))
        self._state.on_timeout.pop(message.tx_id, None)

    def _on_find_tx(self, message: _FindTx) -> Optional[actors.Site]:
        return self.site if self._state.shares.transaction_files(message.tx_id) is not None \
            else None

    def _on_stats(self, _message: _Stats) -> dict[str, int]:
        state = self._state
        return {"bytes_sent": state.bytes_sent, "chunks_sent": state.chunks_sent,
                "bytes_in_flight": state.shares.in_flight.bytes,
                "open_files": len(self._sources), "shared_files": len(state.files),
                "digesting": sum(1 for shared in state.files.values()
                                 if not shared.digest.done()),
                **self._swarm.stats()}

    def _add(self, msg: _AddFile) -> str:
        known = self._state.files.get(msg.rid)
        if known is not None and known.path == msg.path and \
                msg.rid in (self._state.shares.transaction_files(msg.tx_id) or ()):
            return msg.rid                   # the same file added again (a stable RID)
        shape, manifest = None, b""
        if msg.tree is not None:
            manifest = msg.tree.manifest.encode()
            shape = core.TreeShape(len(msg.tree.manifest.files), len(manifest))
        try:
            self._state.shares.file_added(msg.tx_id, msg.rid, msg.name, msg.size,
                                          time.monotonic(), _resume_key(msg), shape)
        except LocalProtocolError as err:
            if "already shared" in str(err):
                raise ValueError(f"{msg.path} is already shared in another transaction "
                                 f"under RID {msg.rid}") from None
            raise TransactionExpired(str(err)) from None
        if msg.tree is not None:
            digests = self._pool.submit(tree_digests, msg.tree, self._stopping)
            digest: Future[str] = Future()
            digests.add_done_callback(lambda f: digest_of_digests(f, digest))
            self._state.files[msg.rid] = _Shared(msg.path, msg.size, msg.mtime_ns, digest,
                                                 msg.on_downloaded, msg.tree, manifest, digests)
            return msg.rid
        digest = self._pool.submit(digest_of, msg.path, msg.size, msg.mtime_ns, msg.size,
                                   self._stopping)
        self._state.files[msg.rid] = _Shared(msg.path, msg.size, msg.mtime_ns, digest,
                                             msg.on_downloaded)
        return msg.rid

    def _recipient(self) -> Optional[tuple[str, str]]:
        """(site, actor address) of the recipient that sent the request being handled."""
        to = self.sender
        if to is None or "/" not in to:
            log.warning("pull request without an actor to answer (from %s) dropped", to)
            return None
        return to.partition("/")[0], to

    def _request(self, message: Any, event: Callable[..., list[serving.OwnerCommand]],
                 *args: Any) -> None:
        """Hand a recipient's request to the core and carry out its answer."""
        who = self._recipient()
        if who is not None:
            site, to = who
            self.run(event(message.rid, site, to, *args, time.monotonic()))

    def _on_swarm(self, message: PullMessage) -> None:
        """A message of pull with peers: admitted as any request is, then tracked."""
        who, now = self._recipient(), time.monotonic()
        if who is None:
            return
        site, to = who
        shares, shared = self._state.shares, None
        if isinstance(message, Join):
            answer = shares.info_requested(message.rid, site, to, now)[0]
            refusal = None if isinstance(answer, serving.SendInfo) else (
                answer.failure if isinstance(answer, serving.Refuse) else Failure.PROTOCOL)
            if isinstance(answer, serving.SendInfo):
                record = self._state.files[message.rid]
                shared = SharedFile(record.path, answer.name, answer.size, record.mtime_ns,
                                    answer.key, record.digest)
        else:
            refusal = shares.swarm_touched(message.rid, site, now)
        if refusal is not None:
            self._tell(to, wire.Refusal(message.rid, refusal))
            return
        self._swarm.received(message, to, shared, now)
        if isinstance(message, Leave):
            status = wire.Status.SUCCESS if message.ok else wire.Status.FAILED
            self.run(shares.download_reported(message.rid, site, to, status, now))

    def _on_info(self, message: wire.InfoRequest) -> Optional[list[Any]]:
        """An ask, answered by the return value (the file's info, or a refusal): it needs
        no actor to answer to, so app code may ask it too."""
        if self.sender is None:
            return None
        site = self.sender.partition("/")[0]
        answer = self._state.shares.info_requested(message.rid, site, self.sender,
                                                   time.monotonic())[0]
        return wire.encode(_answer(answer))

    # -- what the core asks for

    def _send_meta(self, cmd: serving.SendMeta) -> None:
        shared = self._state.files[cmd.rid]
        end = cmd.offset + cmd.length
        if cmd.section is wire.Section.MANIFEST:
            page = memoryview(shared.manifest)[cmd.offset:end]
            self._tell(cmd.to, wire.MetaData(cmd.rid, cmd.section, cmd.offset), (page,))
            return
        assert shared.file_digests is not None

        def reply(done: Future[bytes]) -> None:
            try:
                page = done.result()[cmd.offset:end]
            except Exception as err:  # noqa: BLE001 - a pool thread must not die silently
                log.info("digests of the tree %s failed: %s", shared.path, err)
                self._tell(cmd.to, wire.Refusal(cmd.rid, Failure.CHANGED))
                return
            self._tell(cmd.to, wire.MetaData(cmd.rid, cmd.section, cmd.offset), (page,))
        shared.file_digests.add_done_callback(reply)

    def _send_range_digest(self, cmd: serving.SendRangeDigest) -> None:
        shared = self._state.files[cmd.rid]
        assert shared.tree is not None
        future = self._pool.submit(range_digest, shared.tree, cmd.offset, cmd.length)
        self._reply_when_done(future, cmd.to, cmd.rid, lambda digest: wire.RangeDigest(
            cmd.rid, cmd.offset, cmd.length, digest))

    def _send_prefix(self, cmd: serving.SendPrefixDigest) -> None:
        shared = self._state.files[cmd.rid]
        future = self._pool.submit(digest_of, shared.path, shared.size, shared.mtime_ns,
                                   cmd.length, self._stopping)
        self._reply_when_done(future, cmd.to, cmd.rid,
                              lambda digest: wire.PrefixDigest(cmd.rid, cmd.length, digest))

    def _send_digest(self, cmd: serving.SendDigest) -> None:
        self._reply_when_done(self._state.files[cmd.rid].digest, cmd.to, cmd.rid,
                              lambda digest: wire.FileDigest(cmd.rid, digest))

    def _downloaded(self, cmd: serving.Downloaded) -> None:
        shared = self._state.files.get(cmd.rid)
        if shared is not None and shared.on_downloaded is not None:
            run_callback(shared.on_downloaded, cmd.rid, cmd.site, cmd.status.value, cmd.name)

    def _timed_out(self, cmd: serving.TimedOut) -> None:
        callback = self._state.on_timeout.pop(cmd.tx_id, None)
        if callback is not None:
            run_callback(callback, cmd.tx_id, list(cmd.names))

    def _released(self, cmd: serving.Released) -> None:
        self._state.files.pop(cmd.rid, None)
        self._swarm.close(cmd.rid)
        source = self._sources.pop(cmd.rid, None)
        if source is not None:
            source.close()

    def _send_chunk(self, cmd: serving.SendChunk) -> None:
        data = self._read(cmd.rid, cmd.offset, cmd.length, cmd.to)
        if data is not None:
            self._tell(cmd.to, wire.ChunkData(cmd.rid, cmd.offset), (data,))

    def _read(self, rid: str, offset: int, length: int, to: str) -> Optional[memoryview]:
        """A chunk of a shared file; None if the file changed (``to`` is refused)."""
        try:
            source = self._source(rid)
            data = source.read_into(offset, length, self._buffers)
            source.check_unchanged()        # after the read: these bytes are of the shared file
        except (ZfsError, OSError) as err:
            log.info("shared file of %s unusable: %s", rid, err)
            bad = self._sources.pop(rid, None)
            if bad is not None:
                bad.close()
            self.run(self._state.shares.source_changed(rid, to))
            return None
        self._state.bytes_sent += len(data)
        self._state.chunks_sent += 1
        return data

    def _read_for_swarm(self, rid: str, offset: int, length: int,
                        to: str) -> Optional[memoryview]:
        return self._read(rid, offset, length, to) if rid in self._state.files else None

    def _tell_body(self, to: str, body: Any, payload: tuple[Any, ...]) -> bool:
        return tell_or_log(self.site, to, body, payload)

    def _on_bwlimit(self, message: _Bwlimit) -> None:
        self._state.bwlimit = message.rate
        self.run(self._paced.set_rate(message.rate, self._send_held_chunk))

    def _pace_piece(self, piece: OwnerPiece, size: int) -> None:
        """A swarm piece goes under the owner's cap as a plain pull's chunk does."""
        self.run(self._paced.carry_out(piece, size, self._send_held_chunk))

    def _send_held_chunk(self, cmd: serving.SendChunk | OwnerPiece) -> None:
        """Send a chunk the cap let go, unless its file stopped being shared meanwhile."""
        if isinstance(cmd, OwnerPiece):
            self._swarm.send_piece(cmd)
        elif cmd.rid in self._state.files:
            self._send_chunk(cmd)

    def _source(self, rid: str) -> ChunkSource | _TreeStream:
        source = self._sources.get(rid)
        if source is not None:
            self._sources.move_to_end(rid)
            return source
        shared = self._state.files[rid]
        if shared.tree is not None:
            try:
                self._sources[rid] = _TreeStream(shared.tree)
            except SourceMissing as err:
                raise FileChanged(str(err)) from err
            return self._trim_sources(rid)
        try:
            source = ChunkSource(shared.path)
        except SourceMissing as err:
            raise FileChanged(str(err)) from err
        if (source.size, source.mtime_ns) != (shared.size, shared.mtime_ns):
            source.close()
            raise FileChanged(f"{shared.path!r} changed since it was shared")
        self._sources[rid] = source
        return self._trim_sources(rid)

    def _trim_sources(self, rid: str) -> ChunkSource | _TreeStream:
        while len(self._sources) > self._max_open:
            self._sources.popitem(last=False)[1].close()
        return self._sources[rid]

    def _reply_when_done(self, future: Future[str], to: str, rid: str,
                         answer: Callable[[str], wire.Message]) -> None:
        """Send ``answer(digest)`` once the digest thread has it (from that thread)."""
        def reply(done: Future[str]) -> None:
            try:
                message = answer(done.result())
            except FileChanged:
                message = wire.Refusal(rid, Failure.CHANGED)
            except Exception:  # noqa: BLE001 - a pool thread must not die silently
                log.exception("digest for %s failed", rid)
                message = wire.Refusal(rid, Failure.CHANGED)
            self._tell(to, message)
        future.add_done_callback(reply)

    def _tell(self, to: str, message: wire.Message, payload: tuple[Any, ...] = ()) -> None:
        tell_or_log(self.site, to, wire.encode(message), payload)


def _answer(cmd: serving.OwnerCommand) -> wire.Message:
    """The wire message of an info answer or a refusal."""
    if isinstance(cmd, serving.SendInfo):
        return wire.FileInfo(cmd.rid, cmd.name, cmd.size, cmd.key)
    if isinstance(cmd, serving.SendTreeInfo):
        return wire.TreeInfo(cmd.rid, cmd.name, cmd.key, cmd.files, cmd.size, cmd.manifest_size)
    assert isinstance(cmd, serving.Refuse), cmd
    return wire.Refusal(cmd.rid, cmd.failure)
