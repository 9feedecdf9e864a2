"""The owner's side of pull with peers: the trackers of one site's shared files.

:class:`SwarmTrackers` lives inside the owner's actor (:class:`zfs.pull.owner.OwnerActor`)
and runs on its thread: one :class:`zfs.protocol.swarm.tracker.Tracker` per RID that
recipients pull as a swarm. The owner admits every message first (the RID is shared,
its transaction is alive, it is a file); the trackers then hand out chunks: served by
the owner itself (a ``Piece`` with the chunk as its payload frame) or fetched from a
peer that holds it (a ``Fetch``). The per-chunk digest table a recipient checks a
peer's piece against is computed once per RID, with SHA-256, on the owner's digest pool:
a hostile peer cannot forge a piece that matches it (the whole-file digest, xxh3, checks
what the chunks add up to, not what a peer could craft).

Memory: each tracker holds a few bits per chunk and recipient; the owner has at most
``owner_slots`` pieces in flight per RID; a digest table is 65 bytes a chunk.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional

from zfs.protocol.swarm import pullcodec
from zfs.protocol.swarm import tracker as core
from zfs.protocol.swarm.wire import (Digest, Digests, GetDigest, GetDigests, Join, Leave,
                                     Piece, PullMessage, Rejoin, Send, Want)

log = logging.getLogger(__name__)

#: Bytes per chunk of a file pulled with peers (the unit peers serve and check). Half
#: the 1 MiB of push and plain pull: a chunk must arrive whole before it is passed on,
#: so smaller ones spread faster (8 recipients at 150 Mbit/s: 1.30-1.32x the bound
#: against 1.39-1.50x with 1 MiB), at more messages per byte (16 recipients on this
#: one 2-core machine, where the CPU is the limit: 1.97x against 1.75x).
SWARM_CHUNK = 512 << 10
#: Uploads a recipient makes at once. The simulation (fair-share links) favours 3; on
#: real TCP links capped by tbf, 5 kept the links busier: 8 recipients at 150 Mbit/s,
#: 1.37-1.44x the bound against 1.48x with 3 (python -m benchmarks scale).
PEER_SLOTS = 5
#: Digests per page of the per-chunk table (a page is about 66 KiB on the wire).
PAGE_CHUNKS = 1024
_READ_BLOCK = 1 << 20

#: ``read(rid, offset, length, to)``: the chunk's bytes for ``to``, or None (the file
#: changed, or is no longer shared: the owner refuses ``to``).
ReadChunk = Callable[[str, int, int, str], Optional[memoryview]]
#: ``tell(address, body, payload)``: send a message; False if it could not go.
Tell = Callable[[str, Any, tuple[Any, ...]], bool]


@dataclass(frozen=True, slots=True)
class OwnerPiece:
    """A piece the owner sends: handed to ``pace`` (the owner's cap), then ``send_piece``."""

    rid: str
    command: core.SendPiece


#: ``pace(piece, size)``: send ``piece`` (with :meth:`SwarmTrackers.send_piece`) now or,
#: under the owner's cap (``share(..., bwlimit=)``), once the cap lets it go.
Pace = Callable[[OwnerPiece, int], None]


@dataclass(frozen=True, slots=True)
class SharedFile:
    """What the trackers need of a shared file (the owner's record of it)."""

    path: str
    name: str
    size: int
    mtime_ns: int
    key: str
    digest: Future[str]


def chunk_digests(path: str, size: int, mtime_ns: int, chunk_size: int,
                  stop: threading.Event) -> tuple[str, ...]:
    """SHA-256 of each chunk of ``path`` (hex), read once from the disk.

    Raises:
        RuntimeError: the file is not the one shared (size or mtime changed, before or
            during the read): no table, so no peer is judged against the wrong bytes.
    """
    _check_same(path, size, mtime_ns)
    out: list[str] = []
    with open(path, "rb", buffering=0) as f:
        for start in range(0, size, chunk_size):
            if stop.is_set():
                raise RuntimeError("the owner is stopping")
            digest, offset, end = hashlib.sha256(), start, min(start + chunk_size, size)
            while offset < end:
                block = os.pread(f.fileno(), min(end - offset, _READ_BLOCK), offset)
                if not block:
                    raise RuntimeError(f"{path!r} shrank while being read")
                digest.update(block)
                offset += len(block)
            out.append(digest.hexdigest())
    _check_same(path, size, mtime_ns)
    return tuple(out)


def _check_same(path: str, size: int, mtime_ns: int) -> None:
    st = os.stat(path)
    if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
        raise RuntimeError(f"{path!r} changed since it was shared")


@dataclass(slots=True)
class _Swarm:
    """One RID pulled with peers: its tracker, its file, its per-chunk digest table."""

    tracker: core.Tracker
    shared: SharedFile
    table: Future[tuple[str, ...]]


class SwarmTrackers:
    """Every RID of one owner that recipients pull with peers.

    Args:
        read: reads a chunk of a shared file (see :data:`ReadChunk`).
        tell: sends a message (see :data:`Tell`).
        pool: the owner's digest pool (low priority threads).
        stop: set when the owner stops (ends a digest table being computed).
    """

    def __init__(self, read: ReadChunk, tell: Tell, pool: ThreadPoolExecutor,
                 stop: threading.Event, *, pace: Optional[Pace] = None, owner_slots: int = 4,
                 peer_slots: int = PEER_SLOTS) -> None:
        self._read, self._tell, self._pool, self._stop = read, tell, pool, stop
        self._pace: Pace = pace if pace is not None else lambda piece, _size: \
            self.send_piece(piece)
        self._owner_slots, self._peer_slots = owner_slots, peer_slots
        self._swarms: dict[str, _Swarm] = {}
        self.owner_bytes = 0

    def received(self, message: PullMessage, to: str, shared: Optional[SharedFile],
                 now: float) -> None:
        """An admitted message from the recipient actor ``to``; ``shared`` with a Join."""
        rid = message.rid
        swarm = self._swarms.get(rid)
        if swarm is None:
            if not isinstance(message, Join) or shared is None:
                self._send(Send((to,), Rejoin(rid)))     # it joined before we restarted
                return
            swarm = self._open(rid, shared)
        tracker = swarm.tracker
        if isinstance(message, Join):
            self._run(rid, tracker.joined(to, message.window, message.endpoint, now))
        elif isinstance(message, Want):
            self._run(rid, tracker.wanted(to, message.got, message.failed, now))
        elif isinstance(message, GetDigests):
            self._run(rid, tracker.digests_requested(to, message.page))
        elif isinstance(message, GetDigest):
            self._run(rid, tracker.digest_requested(to))
        elif isinstance(message, Leave):
            self._run(rid, tracker.left(to, message.ok, now, message.seeds))

    def time_passed(self, now: float) -> None:
        for rid, swarm in list(self._swarms.items()):
            self._run(rid, swarm.tracker.time_passed(now))

    def site_lost(self, site: str, now: float) -> None:
        for rid, swarm in list(self._swarms.items()):
            self._run(rid, swarm.tracker.site_lost(site, now))

    def close(self, rid: str) -> None:
        """The share of ``rid`` ended: every recipient stops serving it."""
        swarm = self._swarms.pop(rid, None)
        if swarm is not None:
            swarm.table.cancel()
            self._run(rid, swarm.tracker.close())

    def close_all(self) -> None:
        for rid in list(self._swarms):
            self.close(rid)

    def stats(self) -> dict[str, int]:
        trackers = [swarm.tracker for swarm in self._swarms.values()]
        return {"swarm_owner_bytes": self.owner_bytes,
                "swarm_peer_bytes": sum(sum(t.served.values()) for t in trackers),
                "swarm_rids": len(trackers), "swarm_banned": sum(len(t.banned) for t in trackers)}

    # -- internals

    def _open(self, rid: str, shared: SharedFile) -> _Swarm:
        tracker = core.Tracker(rid, name=shared.name, size=shared.size, key=shared.key,
                               chunk_size=SWARM_CHUNK, page_chunks=PAGE_CHUNKS,
                               owner_slots=self._owner_slots, peer_slots=self._peer_slots)
        table = self._pool.submit(chunk_digests, shared.path, shared.size, shared.mtime_ns,
                                  SWARM_CHUNK, self._stop)
        swarm = self._swarms[rid] = _Swarm(tracker, shared, table)
        return swarm

    def _run(self, rid: str, commands: list[core.TrackerCommand]) -> None:
        for command in commands:
            if isinstance(command, Send):
                self._send(command)
            elif isinstance(command, core.SendPiece):
                self._piece(rid, command)
            elif isinstance(command, core.SendDigests):
                self._digests(rid, command)
            elif isinstance(command, core.SendDigest):
                self._digest(rid, command)

    def _send(self, command: Send) -> None:
        body = pullcodec.encode(command.message)      # type: ignore[arg-type]
        for to in command.to:
            self._tell(to, body, ())

    def _piece(self, rid: str, cmd: core.SendPiece) -> None:
        self._pace(OwnerPiece(rid, cmd), cmd.length)

    def send_piece(self, piece: OwnerPiece) -> None:
        """Read and send a piece the owner serves (unless its share ended meanwhile)."""
        rid, cmd = piece.rid, piece.command
        if rid not in self._swarms:
            return
        data = self._read(rid, cmd.offset, cmd.length, cmd.to)
        if data is None:
            return                  # the owner refused the RID meanwhile: the lease frees it
        self.owner_bytes += len(data)
        self._tell(cmd.to, pullcodec.encode(Piece(rid, cmd.index)), (data,))

    def _digests(self, rid: str, cmd: core.SendDigests) -> None:
        swarm = self._swarms.get(rid)
        if swarm is None:
            return

        def reply(done: Future[tuple[str, ...]]) -> None:
            if done.cancelled():
                return
            try:
                page = done.result()[cmd.first:cmd.first + cmd.count]
            except Exception as err:  # noqa: BLE001 - a pool thread must not die silently
                log.info("chunk digests of %s failed: %s", rid, err)
                return              # the recipient asks again, then the owner refuses it
            self._tell(cmd.to, pullcodec.encode(Digests(rid, cmd.page, page)), ())
        swarm.table.add_done_callback(reply)

    def _digest(self, rid: str, cmd: core.SendDigest) -> None:
        swarm = self._swarms.get(rid)
        if swarm is None:
            return

        def reply(done: Future[str]) -> None:
            try:
                digest = done.result()
            except Exception as err:  # noqa: BLE001 - a pool thread must not die silently
                log.info("digest of %s failed: %s", rid, err)
                return
            self._tell(cmd.to, pullcodec.encode(Digest(rid, digest)), ())
        swarm.shared.digest.add_done_callback(reply)

