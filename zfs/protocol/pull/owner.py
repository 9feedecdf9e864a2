"""The owner's side of pull as a pure core: its book of shares (:class:`Shares`).

No I/O, clocks or threads here: events are method calls named for what happened, time
is the ``now`` argument (monotonic seconds), and the answers are small frozen commands
that the owner's actor shell (``zfs.pull.owner``) carries out (read a chunk, tell a
reply, call back).

One :class:`Shares` per site. A transaction holds files; each file has a RID. A
transaction lives while recipients show activity (any request on any of its files) at
least once per its timeout::

    OPEN --time_passed, idle >= timeout--> EXPIRED   (TimedOut, pending -> "failed")
    OPEN --transaction_ended-------------> ENDED     (pending -> "aborted")

After either, its RIDs are forgotten but remembered (boundedly) as expired, so a late
request is refused with ``expired`` rather than ``unknown``; an owner with stable RIDs
may share the same file again under its old RID (a new transaction takes it back). The per-file callback fires
once per (RID, recipient site): on its report, or at the transaction's end for a
recipient that started and never reported. Chunk bytes in flight to all recipients
together are held to a budget (:class:`~zfs.protocol.pull.budget.InFlight`), so the
owner's memory does not grow with the number of recipients.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional, Union

from zfs.protocol.errors import Failure, LocalProtocolError
from zfs.protocol.states import Transitions, move
from zfs.protocol.tree.layout import DIGEST_CHARS
from zfs.protocol.wire import Section, Status
from zfs.protocol.pull.budget import Decision, InFlight
from zfs.protocol.pull.serving import (Downloaded, OwnerCommand, Refuse, Released, SendChunk,
                                       SendDigest, SendInfo, SendMeta, SendPrefixDigest,
                                       SendRangeDigest, SendTreeInfo, SiteCut, TimedOut)


class TxState(enum.Enum):
    """Lifecycle of a transaction at its owner."""

    OPEN = "open"
    ENDED = "ended"
    EXPIRED = "expired"


TX_TRANSITIONS: Transitions[TxState] = {
    TxState.OPEN: frozenset({TxState.ENDED, TxState.EXPIRED}),
    TxState.ENDED: frozenset(),
    TxState.EXPIRED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class TreeShape:
    """What a shared tree has besides its stream: its files and its manifest's bytes."""

    files: int
    manifest_size: int

    def section_size(self, section: Section) -> int:
        """The bytes of ``section``."""
        if section is Section.MANIFEST:
            return self.manifest_size
        return self.files * DIGEST_CHARS


@dataclass(slots=True)
class _File:
    tx_id: str
    name: str
    size: int
    key: str
    tree: Optional[TreeShape] = None
    changed: bool = False
    pending: set[str] = field(default_factory=set)     # sites that started, not reported
    reported: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Tx:
    timeout: float
    last_activity: float
    state: TxState = TxState.OPEN
    rids: list[str] = field(default_factory=list)

    def move(self, new: TxState) -> None:
        self.state = move(TX_TRANSITIONS, self.state, new, "transaction")


class Shares:
    """The owner's transactions and files; answers requests with commands.

    Args:
        max_chunk_size: the most bytes one request may ask for.
        max_inflight_bytes: the budget of chunk bytes in flight to all recipients (see
            :class:`InFlight`).
        expired_memory: how many ended RIDs to remember as "expired".
        idle_download: seconds after which a silent download's bytes stop counting.
        max_downloads_per_site, stall_timeout: see :class:`InFlight`.
    """

    def __init__(self, max_chunk_size: int = 8 << 20, max_inflight_bytes: int = 16 << 20,
                 expired_memory: int = 100_000, idle_download: float = 60.0,
                 max_downloads_per_site: int = 256, stall_timeout: float = 30.0) -> None:
        self._max_chunk = max_chunk_size
        self._expired_cap = expired_memory
        self._idle = idle_download
        self._txs: dict[str, _Tx] = {}
        self._files: dict[str, _File] = {}
        self._expired: OrderedDict[str, None] = OrderedDict()
        self.in_flight = InFlight(max_inflight_bytes, max_downloads_per_site,
                                  stall_timeout=stall_timeout)

    # -- the owner's own calls --

    def transaction_opened(self, tx_id: str, timeout: float, now: float) -> None:
        """Open a transaction that expires after ``timeout`` seconds without activity."""
        if tx_id in self._txs:
            raise LocalProtocolError(f"transaction {tx_id} already open")
        if not timeout > 0:
            raise LocalProtocolError(f"timeout must be > 0, not {timeout!r}")
        self._txs[tx_id] = _Tx(timeout, now)

    def file_added(self, tx_id: str, rid: str, name: str, size: int, now: float,
                   key: str = "", tree: Optional[TreeShape] = None) -> None:
        """Share a file (or a tree: ``tree``, ``size`` its stream's) under ``rid``.

        ``key`` names the recipients' temporary file: the same for the same file shared
        again (a new RID after an owner restart), so a download can resume across it.
        Defaults to the RID. A RID of an ended transaction may be shared again (stable
        RIDs give the same file the same one); one still shared may not.
        """
        tx = self._txs.get(tx_id)
        if tx is None:
            raise LocalProtocolError(f"transaction {tx_id} is not open")
        if rid in self._files:
            raise LocalProtocolError(f"RID {rid} is already shared")
        self._expired.pop(rid, None)
        self._files[rid] = _File(tx_id, name, size, key or rid, tree)
        tx.rids.append(rid)
        tx.last_activity = now

    def transaction_ended(self, tx_id: str, now: float) -> list[OwnerCommand]:
        """End a transaction on the owner's word (no timeout callback)."""
        tx = self._txs.get(tx_id)
        if tx is None:
            return []
        tx.move(TxState.ENDED)
        return self._close(tx_id, tx, Status.ABORTED) + self._release()

    def time_passed(self, now: float) -> list[OwnerCommand]:
        """Expire every transaction idle for its timeout; forget silent downloads."""
        out: list[OwnerCommand] = []
        for tx_id, tx in list(self._txs.items()):
            if now - tx.last_activity >= tx.timeout:
                tx.move(TxState.EXPIRED)
                names = tuple(self._files[rid].name for rid in tx.rids)
                out.extend(self._close(tx_id, tx, Status.FAILED))
                out.append(TimedOut(tx_id, names))
        self.in_flight.ended_where(idle_since=now - self._idle)
        for site in self.in_flight.stalled(now):
            out.append(SiteCut(site))
        return out + self._release()

    def recipient_lost(self, site: str) -> list[OwnerCommand]:
        """A recipient site went away: its chunks in flight will never arrive."""
        self.in_flight.ended_where(site=site)
        return self._release()

    def source_changed(self, rid: str, to: str) -> list[OwnerCommand]:
        """The shell found the file changed or gone: refuse it from now on."""
        file = self._files.get(rid)
        if file is not None:
            file.changed = True
        return [Refuse(rid, to, Failure.CHANGED)]

    def transaction_files(self, tx_id: str) -> Optional[tuple[str, ...]]:
        """Return the RIDs of an open transaction, or None if it is not open."""
        tx = self._txs.get(tx_id)
        return tuple(tx.rids) if tx is not None else None

    # -- requests from recipients --

    def info_requested(self, rid: str, site: str, to: str, now: float) -> list[OwnerCommand]:
        """A recipient starts (or resumes) a download and wants name and size."""
        file = self._touch(rid, site, now)
        if isinstance(file, Failure):
            return [Refuse(rid, to, file)]
        if file.tree is not None:
            return [SendTreeInfo(rid, to, file.name, file.key, file.tree.files, file.size,
                                 file.tree.manifest_size)]
        return [SendInfo(rid, to, file.name, file.size, file.key)]

    def meta_requested(self, rid: str, site: str, to: str, section: Section, offset: int,
                       length: int, now: float) -> list[OwnerCommand]:
        """A recipient of a tree wants a page of its manifest or its files' digests.

        Pages come from memory the owner holds for the tree anyway, so they are not
        charged to the budget of chunk bytes.
        """
        file = self._touch(rid, site, now)
        if isinstance(file, Failure):
            return [Refuse(rid, to, file)]
        total = file.tree.section_size(section) if file.tree is not None else 0
        if not (0 <= offset < total and length > 0):
            return [Refuse(rid, to, Failure.PROTOCOL)]
        return [SendMeta(rid, to, section, offset, min(length, self._max_chunk, total - offset))]

    def range_digest_requested(self, rid: str, site: str, to: str, offset: int, length: int,
                               now: float) -> list[OwnerCommand]:
        """A recipient resuming a tree wants the digest of a range of its stream."""
        file = self._touch(rid, site, now)
        if isinstance(file, Failure):
            return [Refuse(rid, to, file)]
        if file.tree is None or not (length > 0 and offset + length <= file.size):
            return [Refuse(rid, to, Failure.PROTOCOL)]
        return [SendRangeDigest(rid, to, offset, length)]

    def prefix_requested(self, rid: str, site: str, to: str, length: int,
                         now: float) -> list[OwnerCommand]:
        """A recipient holding ``length`` bytes wants to check them before resuming."""
        file = self._touch(rid, site, now)
        if isinstance(file, Failure):
            return [Refuse(rid, to, file)]
        if not 0 < length <= file.size:
            return [Refuse(rid, to, Failure.PROTOCOL)]
        return [SendPrefixDigest(rid, to, length)]

    def chunk_requested(self, rid: str, site: str, to: str, offset: int, length: int,
                        mark: int, now: float) -> list[OwnerCommand]:
        """A recipient asks for ``length`` bytes at ``offset``; it has every byte below ``mark``.

        The chunk is sent now, or once the in-flight budget allows (see :class:`InFlight`).
        """
        file = self._touch(rid, site, now)
        if isinstance(file, Failure):
            return [Refuse(rid, to, file)]
        if not (0 <= offset < file.size and length > 0):
            return [Refuse(rid, to, Failure.PROTOCOL)]
        length = min(length, self._max_chunk, file.size - offset)
        decision = self.in_flight.requested(rid, site, to, offset, length, mark, now)
        if decision is Decision.BUSY:
            return [Refuse(rid, to, Failure.REFUSED)]
        out = self._release()
        if decision is Decision.SERVE:
            self.in_flight.served(to, offset, length)
            out.append(SendChunk(rid, to, offset, length))
        return out

    def mark_reported(self, rid: str, site: str, to: str, mark: int,
                      now: float) -> list[OwnerCommand]:
        """A recipient holds every byte below ``mark``: free that much of the budget."""
        if isinstance(self._touch(rid, site, now), Failure):
            return []
        self.in_flight.marked(to, mark, now)
        return self._release()

    def digest_requested(self, rid: str, site: str, to: str, now: float) -> list[OwnerCommand]:
        """A recipient has every byte and wants the whole-file digest."""
        self.in_flight.ended(to)
        out = self._release()
        file = self._touch(rid, site, now)
        return out + [Refuse(rid, to, file) if isinstance(file, Failure) else SendDigest(rid, to)]

    def download_reported(self, rid: str, site: str, to: str, status: Status,
                          now: float) -> list[OwnerCommand]:
        """A recipient says how its download of ``rid`` ended."""
        self.in_flight.ended(to)
        out = self._release()
        file = self._files.get(rid)
        if file is None or site in file.reported:
            return out
        self._txs[file.tx_id].last_activity = now
        file.pending.discard(site)
        file.reported.add(site)
        return out + [Downloaded(file.tx_id, rid, site, status, file.name)]

    def swarm_touched(self, rid: str, site: str, now: float) -> Optional[Failure]:
        """A recipient of ``rid`` pulling with peers spoke: why it is refused, or None.

        It counts as activity of the transaction, as any request of a plain pull does,
        and the site is a pending recipient until it reports (``download_reported``).
        Only a file is pulled with peers: a tree's RID is refused as ``protocol``.
        """
        file = self._touch(rid, site, now)
        if isinstance(file, Failure):
            return file
        return Failure.PROTOCOL if file.tree is not None else None

    # -- internals --

    def _refusal(self, rid: str) -> Optional[Failure]:
        """Why ``rid`` cannot be served now, or None when it can."""
        file = self._files.get(rid)
        if file is None:
            return Failure.EXPIRED if rid in self._expired else Failure.UNKNOWN
        return Failure.CHANGED if file.changed else None

    def _touch(self, rid: str, site: str, now: float) -> Union[_File, Failure]:
        """The file ``rid``, its transaction marked active and ``site`` a pending recipient;
        or the refusal."""
        refusal = self._refusal(rid)
        if refusal is not None:
            return refusal
        file = self._files[rid]
        self._txs[file.tx_id].last_activity = now
        if site not in file.reported:
            file.pending.add(site)
        return file

    def _release(self) -> list[OwnerCommand]:
        """Serve waiting requests that the budget now allows, refusing stale ones."""
        out: list[OwnerCommand] = []
        while (waiting := self.in_flight.next_waiting()) is not None:
            rid, to, offset, length, live = waiting
            refusal = self._refusal(rid)
            if refusal is not None:
                out.append(Refuse(rid, to, refusal))
                continue
            if not live:
                continue                     # the download ended or its site is gone
            self.in_flight.served(to, offset, length)
            out.append(SendChunk(rid, to, offset, length))
        return out

    def _close(self, tx_id: str, tx: _Tx, pending_status: Status) -> list[OwnerCommand]:
        out: list[OwnerCommand] = []
        del self._txs[tx_id]
        self.in_flight.ended_where(rids=frozenset(tx.rids))
        for rid in tx.rids:
            file = self._files.pop(rid)
            for site in sorted(file.pending):
                out.append(Downloaded(tx_id, rid, site, pending_status, file.name))
            out.append(Released(rid))
            self._expired[rid] = None
            while len(self._expired) > self._expired_cap:
                self._expired.popitem(last=False)
        return out
