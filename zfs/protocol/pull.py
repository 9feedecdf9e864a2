"""The pull protocol, as two pure cores: the owner's book of shares and one download.

No I/O, clocks or threads here: events are method calls named for what happened, time
is the ``now`` argument (monotonic seconds), and the answers are small frozen commands
that the actor shells in ``zfs.pull`` carry out (read a chunk, tell a reply, call back).

Owner side (:class:`Shares`), one per site. A transaction holds files; each file has a
RID. A transaction lives while recipients show activity (any request on any of its
files) at least once per its timeout::

    OPEN --time_passed, idle >= timeout--> EXPIRED   (TimedOut, pending -> "failed")
    OPEN --transaction_ended-------------> ENDED     (pending -> "aborted")

After either, its RIDs are forgotten but remembered (boundedly) as expired, so a late
request is refused with ``expired`` rather than ``unknown``. The per-file callback fires
once per (RID, recipient site): on its report, or at the transaction's end for a
recipient that started and never reported. Chunk bytes in flight to all recipients
together are held to a budget (:class:`InFlight`), so the owner's memory does not grow
with the number of recipients.

Download side (:class:`Download`), one per download::

    OPENING --info_received, partial_opened(have > 0)--> RESUMING
       |                                                    | both prefix digests known
       +--partial_opened(have == 0)--> FETCHING <-----------+ (equal: from have; else from 0)
                                          | last chunk written
                                          v
                                       VERIFYING --digest_received, committed--> DONE

    any state but DONE --refused / owner_lost / no answer / error / abort--> FAILED | ABORTED

A request names (rid, offset, length), so resending one that timed out is harmless; a
late or duplicate reply is ignored. Each request is resent up to ``retries`` times.
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Optional, Union

from zfs.protocol import name_problem


class LocalProtocolError(Exception):
    """Our own caller misused a core (unknown or ended transaction, bad argument)."""

    def __init__(self, text: str, refusal: Optional["Refusal"] = None) -> None:
        super().__init__(text)
        self.refusal = refusal


class Refusal(str, enum.Enum):
    """Why the owner will not serve a request (sent over the wire as the value)."""

    UNKNOWN = "unknown"
    EXPIRED = "expired"
    CHANGED = "changed"
    BAD_REQUEST = "bad_request"


class Status(str, enum.Enum):
    """A recipient's outcome for one file, as the owner's per-file callback gets it."""

    SUCCESS = "success"
    FAILED = "failed"
    ABORTED = "aborted"


class TxState(enum.Enum):
    """Lifecycle of a transaction at its owner."""

    OPEN = "open"
    ENDED = "ended"
    EXPIRED = "expired"


TX_TRANSITIONS: dict[TxState, frozenset[TxState]] = {
    TxState.OPEN: frozenset({TxState.ENDED, TxState.EXPIRED}),
    TxState.ENDED: frozenset(),
    TxState.EXPIRED: frozenset(),
}


# ---- owner commands -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SendInfo:
    """Answer ``to`` with the file's name, size and resume key."""

    rid: str
    to: str
    name: str
    size: int
    key: str


@dataclass(frozen=True, slots=True)
class SendPrefixDigest:
    """Tell ``to`` the digest of the file's first ``length`` bytes (to check a resume)."""

    rid: str
    to: str
    length: int


@dataclass(frozen=True, slots=True)
class SendChunk:
    """Read ``length`` bytes at ``offset`` and tell them to ``to`` as one payload frame."""

    rid: str
    to: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class SendDigest:
    """Tell ``to`` the whole-file digest."""

    rid: str
    to: str


@dataclass(frozen=True, slots=True)
class Refuse:
    """Tell ``to`` that the request for ``rid`` is refused, and why."""

    rid: str
    to: str
    refusal: Refusal


@dataclass(frozen=True, slots=True)
class Downloaded:
    """Call the file's callback: ``site`` finished ``rid`` with ``status``."""

    tx_id: str
    rid: str
    site: str
    status: Status
    name: str


@dataclass(frozen=True, slots=True)
class TimedOut:
    """Call the transaction's timeout callback with its file names."""

    tx_id: str
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Released:
    """The file of ``rid`` is no longer shared: close its handles, drop its digests."""

    rid: str


OwnerCommand = Union[SendInfo, SendPrefixDigest, SendChunk, SendDigest, Refuse, Downloaded,
                     TimedOut, Released]


@dataclass(slots=True)
class _File:
    tx_id: str
    name: str
    size: int
    key: str
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
        if new not in TX_TRANSITIONS[self.state]:
            raise LocalProtocolError(f"transaction cannot go from {self.state.name} to {new.name}")
        self.state = new


@dataclass(slots=True)
class _Flight:
    rid: str
    site: str
    last_seen: float
    mark: int = 0                                   # every byte below it has arrived
    served: dict[int, int] = field(default_factory=dict)   # offset -> length, maybe not arrived


class InFlight:
    """The owner's budget of chunk bytes served and not yet known to have arrived.

    Without it the owner would hold up to window x chunk bytes per recipient in its
    outbound queues whenever recipients are slower than it. Each chunk request says
    ``mark``, the recipient's lowest missing byte (all bytes below it have arrived), so
    the owner knows what has left its memory. A request that does not fit the budget
    waits in a FIFO; the request *for* the mark is always served at once, so every
    download can progress whatever the others hold: the owner's memory is then at most
    the budget plus one chunk per download.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.bytes = 0
        self._flights: dict[str, _Flight] = {}          # by the downloading actor's address
        self._waiting: deque[tuple[str, str, int, int]] = deque()   # rid, to, offset, length

    def requested(self, rid: str, site: str, to: str, offset: int, length: int, mark: int,
                  now: float) -> bool:
        """Note a request; return True to serve it now (then call :meth:`served`)."""
        flight = self._flights.get(to)
        if flight is None:
            flight = self._flights[to] = _Flight(rid, site, now)
        flight.last_seen = now
        if mark > flight.mark:
            flight.mark = mark
            for arrived in [o for o in flight.served if o < mark]:
                self.bytes -= flight.served.pop(arrived)
        if offset == flight.mark or (not self._waiting and self._fits(length)):
            return True
        self._waiting.append((rid, to, offset, length))
        return False

    def served(self, to: str, offset: int, length: int) -> None:
        """Count a chunk as in flight."""
        flight = self._flights[to]
        self.bytes += length - flight.served.get(offset, 0)
        flight.served[offset] = length

    def next_waiting(self) -> Optional[tuple[str, str, int, int, bool]]:
        """Pop the oldest waiting request that may go now, with whether its download lives.

        Requests for bytes that have arrived meanwhile are dropped; those of a download
        that ended come back with False (to be refused or dropped), whatever the budget.
        """
        while self._waiting:
            rid, to, offset, length = self._waiting[0]
            flight = self._flights.get(to)
            if flight is None:
                self._waiting.popleft()
                return rid, to, offset, length, False
            if offset < flight.mark:
                self._waiting.popleft()
                continue
            if not self._fits(length):
                return None
            self._waiting.popleft()
            return rid, to, offset, length, True
        return None

    def ended(self, to: str) -> None:
        """The download at ``to`` ended: nothing of it is in flight any more."""
        flight = self._flights.pop(to, None)
        if flight is not None:
            self.bytes -= sum(flight.served.values())

    def ended_where(self, site: Optional[str] = None, rids: frozenset[str] = frozenset(),
                    idle_since: float = float("-inf")) -> None:
        """End every download of ``site``, of one of ``rids``, or silent since ``idle_since``."""
        for to, flight in list(self._flights.items()):
            if flight.site == site or flight.rid in rids or flight.last_seen < idle_since:
                self.ended(to)

    def _fits(self, length: int) -> bool:
        return self.bytes == 0 or self.bytes + length <= self.budget


class Shares:
    """The owner's transactions and files; answers requests with commands.

    Args:
        max_chunk_size: the most bytes one request may ask for.
        max_inflight_bytes: the budget of chunk bytes in flight to all recipients (see
            :class:`InFlight`).
        expired_memory: how many ended RIDs to remember as "expired".
        idle_download: seconds after which a silent download's bytes stop counting.
    """

    def __init__(self, max_chunk_size: int = 8 << 20, max_inflight_bytes: int = 16 << 20,
                 expired_memory: int = 100_000, idle_download: float = 60.0) -> None:
        self._max_chunk = max_chunk_size
        self._expired_cap = expired_memory
        self._idle = idle_download
        self._txs: dict[str, _Tx] = {}
        self._files: dict[str, _File] = {}
        self._expired: OrderedDict[str, None] = OrderedDict()
        self.in_flight = InFlight(max_inflight_bytes)

    # -- the owner's own calls --

    def transaction_opened(self, tx_id: str, timeout: float, now: float) -> None:
        """Open a transaction that expires after ``timeout`` seconds without activity."""
        if tx_id in self._txs:
            raise LocalProtocolError(f"transaction {tx_id} already open")
        if not timeout > 0:
            raise LocalProtocolError(f"timeout must be > 0, not {timeout!r}")
        self._txs[tx_id] = _Tx(timeout, now)

    def file_added(self, tx_id: str, rid: str, name: str, size: int, now: float,
                   key: str = "") -> None:
        """Share a file under ``rid`` in an open transaction.

        ``key`` names the recipients' temporary file: the same for the same file shared
        again (a new RID after an owner restart), so a download can resume across it.
        Defaults to the RID.
        """
        tx = self._txs.get(tx_id)
        if tx is None:
            raise LocalProtocolError(f"transaction {tx_id} is not open", Refusal.EXPIRED)
        if rid in self._files or rid in self._expired:
            raise LocalProtocolError(f"RID {rid} already used")
        self._files[rid] = _File(tx_id, name, size, key or rid)
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
        return [Refuse(rid, to, Refusal.CHANGED)]

    def transaction_files(self, tx_id: str) -> Optional[tuple[str, ...]]:
        """Return the RIDs of an open transaction, or None if it is not open."""
        tx = self._txs.get(tx_id)
        return tuple(tx.rids) if tx is not None else None

    # -- requests from recipients --

    def info_requested(self, rid: str, site: str, to: str, now: float) -> list[OwnerCommand]:
        """A recipient starts (or resumes) a download and wants name and size."""
        file, refusal = self._touch(rid, site, now)
        if file is None:
            return [Refuse(rid, to, refusal)]
        return [SendInfo(rid, to, file.name, file.size, file.key)]

    def prefix_requested(self, rid: str, site: str, to: str, length: int,
                         now: float) -> list[OwnerCommand]:
        """A recipient holding ``length`` bytes wants to check them before resuming."""
        file, refusal = self._touch(rid, site, now)
        if file is None:
            return [Refuse(rid, to, refusal)]
        if not 0 < length <= file.size:
            return [Refuse(rid, to, Refusal.BAD_REQUEST)]
        return [SendPrefixDigest(rid, to, length)]

    def chunk_requested(self, rid: str, site: str, to: str, offset: int, length: int,
                        mark: int, now: float) -> list[OwnerCommand]:
        """A recipient asks for ``length`` bytes at ``offset``; it has every byte below ``mark``.

        The chunk is sent now, or once the in-flight budget allows (see :class:`InFlight`).
        """
        file, refusal = self._touch(rid, site, now)
        if file is None:
            return [Refuse(rid, to, refusal)]
        if not (0 <= offset < file.size and length > 0):
            return [Refuse(rid, to, Refusal.BAD_REQUEST)]
        length = min(length, self._max_chunk, file.size - offset)
        now_ok = self.in_flight.requested(rid, site, to, offset, length, mark, now)
        out = self._release()
        if now_ok:
            self.in_flight.served(to, offset, length)
            out.append(SendChunk(rid, to, offset, length))
        return out

    def digest_requested(self, rid: str, site: str, to: str, now: float) -> list[OwnerCommand]:
        """A recipient has every byte and wants the whole-file digest."""
        self.in_flight.ended(to)
        out = self._release()
        file, refusal = self._touch(rid, site, now)
        return out + [SendDigest(rid, to) if file is not None else Refuse(rid, to, refusal)]

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

    # -- internals --

    def _touch(self, rid: str, site: str, now: float) -> tuple[Optional[_File], Refusal]:
        file = self._files.get(rid)
        if file is None:
            return None, Refusal.EXPIRED if rid in self._expired else Refusal.UNKNOWN
        if file.changed:
            return None, Refusal.CHANGED
        self._txs[file.tx_id].last_activity = now
        if site not in file.reported:
            file.pending.add(site)
        return file, Refusal.UNKNOWN

    def _release(self) -> list[OwnerCommand]:
        """Serve waiting requests that the budget now allows, refusing stale ones."""
        out: list[OwnerCommand] = []
        while (waiting := self.in_flight.next_waiting()) is not None:
            rid, to, offset, length, live = waiting
            file = self._files.get(rid)
            if file is None or file.changed:
                refusal = (Refusal.CHANGED if file is not None
                           else Refusal.EXPIRED if rid in self._expired else Refusal.UNKNOWN)
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


# ---- download side ---------------------------------------------------------------

class DlState(enum.Enum):
    """Lifecycle of one download at the recipient."""

    OPENING = "opening"
    RESUMING = "resuming"
    FETCHING = "fetching"
    VERIFYING = "verifying"
    DONE = "done"
    FAILED = "failed"
    ABORTED = "aborted"


_ENDS = frozenset({DlState.DONE, DlState.FAILED, DlState.ABORTED})
_BAD_ENDS = frozenset({DlState.FAILED, DlState.ABORTED})
DL_TRANSITIONS: dict[DlState, frozenset[DlState]] = {
    DlState.OPENING: frozenset({DlState.RESUMING, DlState.FETCHING, DlState.VERIFYING})
    | _BAD_ENDS,
    DlState.RESUMING: frozenset({DlState.FETCHING, DlState.VERIFYING}) | _BAD_ENDS,
    DlState.FETCHING: frozenset({DlState.VERIFYING}) | _BAD_ENDS,
    DlState.VERIFYING: frozenset({DlState.DONE}) | _BAD_ENDS,
    DlState.DONE: frozenset(),
    DlState.FAILED: frozenset(),
    DlState.ABORTED: frozenset(),
}


class Failure(str, enum.Enum):
    """Why a download ended without a file."""

    UNKNOWN = "unknown"
    EXPIRED = "expired"
    CHANGED = "changed"
    BAD_REQUEST = "bad_request"
    NO_ANSWER = "no_answer"
    OWNER_LOST = "owner_lost"
    BAD_REPLY = "bad_reply"
    UNSAFE_NAME = "unsafe_name"
    INTEGRITY = "integrity"
    LOCAL_ERROR = "local_error"
    ABORTED = "aborted"


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """Ask the owner for the file's name and size."""


@dataclass(frozen=True, slots=True)
class OpenPartial:
    """Open the temporary file for ``name`` under ``key``, then call partial_opened."""

    name: str
    key: str


@dataclass(frozen=True, slots=True)
class RequestPrefix:
    """Ask the owner for the digest of the file's first ``length`` bytes."""

    length: int


@dataclass(frozen=True, slots=True)
class DigestPrefix:
    """Digest the ``length`` bytes we hold, then call prefix_digested."""

    length: int


@dataclass(frozen=True, slots=True)
class RequestChunk:
    """Ask the owner for ``length`` bytes at ``offset``; we hold every byte below ``mark``."""

    offset: int
    length: int
    mark: int


@dataclass(frozen=True, slots=True)
class RequestDigest:
    """Ask the owner for the whole-file digest."""


@dataclass(frozen=True, slots=True)
class StartOver:
    """Our bytes on disk do not match the owner's: drop them and write from 0."""


@dataclass(frozen=True, slots=True)
class WriteChunk:
    """Write the payload just received at ``offset``."""

    offset: int


@dataclass(frozen=True, slots=True)
class Commit:
    """Check size and digest, then rename the file into place; call committed or commit_failed."""

    size: int
    digest: str


@dataclass(frozen=True, slots=True)
class Finish:
    """The download ended: report to the owner (if reachable) and to our caller."""

    state: DlState
    failure: Optional[Failure] = None
    detail: str = ""


DownloadCommand = Union[RequestInfo, OpenPartial, RequestPrefix, DigestPrefix, RequestChunk,
                        RequestDigest, StartOver, WriteChunk, Commit, Finish]

_INFO = -1      # in-flight keys: a chunk's offset, or one of these
_PREFIX = -2
_DIGEST = -3


@dataclass(slots=True)
class _Pending:
    length: int
    deadline: float
    sends: int = 1


class Download:
    """One download of one RID: a window of chunk requests, retries, resume, and the end.

    Args:
        window_chunks: chunk requests kept in flight.
        chunk_size: bytes per request.
        request_timeout: seconds before a request is sent again.
        retries: resends of one request before the download fails.
    """

    def __init__(self, *, window_chunks: int = 8, chunk_size: int = 1 << 20,
                 request_timeout: float = 10.0, retries: int = 3) -> None:
        if window_chunks < 1 or chunk_size < 1 or retries < 0 or not request_timeout > 0:
            raise LocalProtocolError("window_chunks, chunk_size >= 1; retries >= 0; timeout > 0")
        self.state = DlState.OPENING
        self.name = ""
        self.size = -1
        self.start = 0                       # where this run started writing (resume point)
        self.received = 0                    # bytes received in this run
        self._window, self._chunk = window_chunks, chunk_size
        self._timeout, self._retries = request_timeout, retries
        self._have = 0
        self._local_digest: Optional[str] = None
        self._owner_digest: Optional[str] = None
        self._next = 0
        self._pending: dict[int, _Pending] = {}

    @property
    def bytes_done(self) -> int:
        """Bytes of the file we hold (resumed prefix + received in this run)."""
        return self.start + self.received

    def started(self, now: float) -> list[DownloadCommand]:
        """Begin: ask the owner about the file."""
        self._pending[_INFO] = _Pending(0, now + self._timeout)
        return [RequestInfo()]

    def info_received(self, name: str, size: int, key: str,
                      now: float) -> list[DownloadCommand]:
        """The owner named the file, its size and the key of its temporary file."""
        if self.state is not DlState.OPENING or self._pending.pop(_INFO, None) is None:
            return []
        if type(size) is not int or size < 0:
            return self._fail(Failure.BAD_REPLY, f"bad size {size!r}")
        problem = name_problem(name) or name_problem(key)
        if problem is not None:
            return self._fail(Failure.UNSAFE_NAME, problem)
        self.name, self.size = name, size
        return [OpenPartial(name, key)]

    def partial_opened(self, have: int, now: float) -> list[DownloadCommand]:
        """The temporary file is open and holds ``have`` bytes from an earlier run."""
        if self.state is not DlState.OPENING or self.size < 0:
            return []
        if 0 < have <= self.size:
            self._move(DlState.RESUMING)
            self._have = have
            self._pending[_PREFIX] = _Pending(have, now + self._timeout)
            return [RequestPrefix(have), DigestPrefix(have)]
        out: list[DownloadCommand] = [StartOver()] if have else []
        return out + self._begin(0, now)

    def prefix_digested(self, digest: str, now: float) -> list[DownloadCommand]:
        """We digested the bytes we hold."""
        if self.state is not DlState.RESUMING:
            return []
        self._local_digest = digest
        return self._decide_resume(now)

    def prefix_received(self, length: int, digest: str, now: float) -> list[DownloadCommand]:
        """The owner sent its digest of the first ``length`` bytes."""
        if self.state is not DlState.RESUMING or length != self._have:
            return []
        if self._pending.pop(_PREFIX, None) is None:
            return []
        self._owner_digest = digest
        return self._decide_resume(now)

    def chunk_received(self, offset: int, length: int, now: float) -> list[DownloadCommand]:
        """A chunk arrived; write it if we asked for it and have not had it yet."""
        want = self._pending.get(offset) if offset >= 0 else None
        if self.state is not DlState.FETCHING or want is None:
            return []                        # late, duplicate, or never asked: ignore
        if length != want.length:
            return self._fail(Failure.BAD_REPLY,
                              f"chunk at {offset}: {length} bytes, asked {want.length}")
        del self._pending[offset]
        self.received += length
        out: list[DownloadCommand] = [WriteChunk(offset)]
        if self._next >= self.size and not self._pending:
            return out + self._verify(now)
        return out + self._fill(now)

    def digest_received(self, digest: str) -> list[DownloadCommand]:
        """The owner sent the whole-file digest: commit."""
        if self.state is not DlState.VERIFYING or self._pending.pop(_DIGEST, None) is None:
            return []
        return [Commit(self.size, digest)]

    def committed(self) -> list[DownloadCommand]:
        """The file is checked and in place."""
        if self.state is not DlState.VERIFYING:
            return []
        self._move(DlState.DONE)
        return [Finish(DlState.DONE)]

    def commit_failed(self, detail: str) -> list[DownloadCommand]:
        """Size or digest did not match."""
        return self._fail(Failure.INTEGRITY, detail)

    def local_error(self, detail: str) -> list[DownloadCommand]:
        """Our own side failed (disk full, temp file not creatable)."""
        return self._fail(Failure.LOCAL_ERROR, detail)

    def refused(self, refusal: str, detail: str = "") -> list[DownloadCommand]:
        """The owner refused a request: the download cannot go on."""
        try:
            failure = Failure(refusal)
        except ValueError:
            failure = Failure.BAD_REPLY
        return self._fail(failure, detail or refusal)

    def owner_lost(self, detail: str = "") -> list[DownloadCommand]:
        """The owner's site went away."""
        return self._fail(Failure.OWNER_LOST, detail or "owner lost")

    def abort_requested(self) -> list[DownloadCommand]:
        """Our caller aborted the download."""
        if self.state in _ENDS:
            return []
        self._move(DlState.ABORTED)
        self._pending.clear()
        return [Finish(DlState.ABORTED, Failure.ABORTED, "aborted")]

    def time_passed(self, now: float) -> list[DownloadCommand]:
        """Resend every request past its deadline, or fail once one ran out of retries."""
        out: list[DownloadCommand] = []
        for key, want in list(self._pending.items()):
            if want.deadline > now:
                continue
            if want.sends > self._retries:
                return self._fail(Failure.NO_ANSWER, f"no answer after {want.sends} requests")
            want.sends += 1
            want.deadline = now + self._timeout
            out.append(self._request(key, want))
        return out

    def _mark(self) -> int:
        """Our lowest missing byte: every chunk below it has arrived."""
        return min((k for k in self._pending if k >= 0), default=self._next)

    def _decide_resume(self, now: float) -> list[DownloadCommand]:
        if self._local_digest is None or self._owner_digest is None:
            return []
        if self._local_digest == self._owner_digest:
            return self._begin(self._have, now)
        return [StartOver()] + self._begin(0, now)

    def _begin(self, start: int, now: float) -> list[DownloadCommand]:
        self.start = self._next = start
        if start == self.size:
            return self._verify(now)
        self._move(DlState.FETCHING)
        return self._fill(now)

    def _request(self, key: int, want: _Pending) -> DownloadCommand:
        if key == _INFO:
            return RequestInfo()
        if key == _PREFIX:
            return RequestPrefix(want.length)
        if key == _DIGEST:
            return RequestDigest()
        return RequestChunk(key, want.length, self._mark())

    def _fill(self, now: float) -> list[DownloadCommand]:
        out: list[DownloadCommand] = []
        while len(self._pending) < self._window and self._next < self.size:
            length = min(self._chunk, self.size - self._next)
            self._pending[self._next] = _Pending(length, now + self._timeout)
            out.append(RequestChunk(self._next, length, self._mark()))
            self._next += length
        return out

    def _verify(self, now: float) -> list[DownloadCommand]:
        self._move(DlState.VERIFYING)
        self._pending[_DIGEST] = _Pending(0, now + self._timeout)
        return [RequestDigest()]

    def _fail(self, failure: Failure, detail: str) -> list[DownloadCommand]:
        if self.state in _ENDS:
            return []
        self._move(DlState.FAILED)
        self._pending.clear()
        return [Finish(DlState.FAILED, failure, detail)]

    def _move(self, new: DlState) -> None:
        if new not in DL_TRANSITIONS[self.state]:
            raise LocalProtocolError(f"download cannot go from {self.state.name} to {new.name}")
        self.state = new
