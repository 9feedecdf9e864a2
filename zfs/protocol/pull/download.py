"""The recipient's side of pull as a pure core: one :class:`Download` of one RID.

No I/O, clocks or threads here: events are method calls named for what happened, time
is the ``now`` argument (monotonic seconds), and the answers are small frozen commands
that the download's actor shell (``zfs.pull.download``) carries out (request, write,
commit, call back)::

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
from dataclasses import dataclass
from typing import Optional, Union

from zfs.protocol.names import name_problem
from zfs.protocol.errors import Failure, LocalProtocolError
from zfs.protocol.states import Transitions, move

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
DL_TRANSITIONS: Transitions[DlState] = {
    DlState.OPENING: frozenset({DlState.RESUMING, DlState.FETCHING, DlState.VERIFYING})
    | _BAD_ENDS,
    DlState.RESUMING: frozenset({DlState.FETCHING, DlState.VERIFYING}) | _BAD_ENDS,
    DlState.FETCHING: frozenset({DlState.VERIFYING}) | _BAD_ENDS,
    DlState.VERIFYING: frozenset({DlState.DONE}) | _BAD_ENDS,
    DlState.DONE: frozenset(),
    DlState.FAILED: frozenset(),
    DlState.ABORTED: frozenset(),
}


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
class ReportMark:
    """Tell the owner we now hold every byte below ``mark``.

    Chunk requests carry the mark; this is for when none is left to send, so the
    owner's in-flight budget still learns what arrived.
    """

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
                        ReportMark, RequestDigest, StartOver, WriteChunk, Commit, Finish]

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
                 request_timeout: float = 10.0, retries: int = 3,
                 owner_wait: Optional[float] = None) -> None:
        if window_chunks < 1 or chunk_size < 1 or retries < 0 or not request_timeout > 0:
            raise LocalProtocolError("window_chunks, chunk_size >= 1; retries >= 0; timeout > 0")
        self.owner_wait = request_timeout if owner_wait is None else owner_wait
        self.state = DlState.OPENING
        self.name = ""
        self.size = -1
        self.start = 0                       # where this run started writing (resume point)
        self.received = 0                    # bytes received in this run
        self._window, self._chunk = window_chunks, chunk_size
        self._timeout, self._retries = request_timeout, retries
        # When the owner's site went away: since when, and why (None while it is there).
        self._away_since: Optional[float] = None
        self._away_detail = ""
        self._have = 0
        self._local_digest: Optional[str] = None
        self._owner_digest: Optional[str] = None
        self._next = 0
        self._pending: dict[int, _Pending] = {}

    @property
    def finished(self) -> bool:
        """True once the download is DONE, FAILED or ABORTED."""
        return self.state in _ENDS

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
            return self._fail(Failure.PROTOCOL, f"bad size {size!r}")
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
            return self._fail(Failure.PROTOCOL,
                              f"chunk at {offset}: {length} bytes, asked {want.length}")
        mark_before = self._mark()
        del self._pending[offset]
        self.received += length
        write: list[DownloadCommand] = [WriteChunk(offset)]
        if self._next >= self.size and not self._pending:
            return write + self._verify(now)
        more = self._fill(now)
        if not more and self._mark() > mark_before:
            more = [ReportMark(self._mark())]
        # The next requests go out before the write: the owner reads and sends them
        # while this chunk goes to disk, instead of after.
        return more + write

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
        return self._fail(Failure.LOCAL, detail)

    def refused(self, failure: Failure, detail: str = "") -> list[DownloadCommand]:
        """The owner refused a request (or answered one wrongly): the download cannot go on."""
        return self._fail(failure, detail or failure.value)

    def owner_lost(self, detail: str = "") -> list[DownloadCommand]:
        """The owner cannot be reached at all (unknown site): fail now."""
        return self._fail(Failure.LOST, detail or "owner lost")

    def owner_gone(self, now: float, detail: str = "") -> list[DownloadCommand]:
        """The owner's site went away: wait ``owner_wait`` seconds for it, then fail.

        The runtime tells at once that a site died or its link was cut; a link that comes
        back within the wait costs only the wait, and requests in flight are sent again
        the moment the owner returns (:meth:`owner_back`), not a request timeout later.
        """
        if not self.finished and self._away_since is None:
            self._away_since, self._away_detail = now, detail or "owner lost"
        return []

    def owner_back(self, now: float) -> list[DownloadCommand]:
        """The owner's site is reachable again: resend every request in flight.

        Past the opening, ask for the file's info again too (its answer is not waited
        for): a site that restarted and no longer shares the RID answers that at once
        (the shell asks it, and a site without the owner fails the ask), where the
        resent requests would go unanswered until their retries ran out.
        """
        if self.finished or self._away_since is None:
            return []
        self._away_since = None
        out: list[DownloadCommand] = [] if self.state is DlState.OPENING else [RequestInfo()]
        for key, want in self._pending.items():
            want.deadline = now + self._timeout
            out.append(self._request(key, want))
        return out

    def abort_requested(self) -> list[DownloadCommand]:
        """Our caller aborted the download."""
        if self.finished:
            return []
        self._move(DlState.ABORTED)
        self._pending.clear()
        return [Finish(DlState.ABORTED, Failure.ABORTED, "aborted")]

    def time_passed(self, now: float) -> list[DownloadCommand]:
        """Resend every request past its deadline, or fail once one ran out of retries."""
        if self._away_since is not None:     # nothing can be sent; wait or give up
            if not self.finished and now - self._away_since >= self.owner_wait:
                return self._fail(Failure.LOST, f"{self._away_detail}; not back "
                                  f"within {self.owner_wait:g} s")
            return []
        out: list[DownloadCommand] = []
        for key, want in list(self._pending.items()):
            if want.deadline > now:
                continue
            if want.sends > self._retries:
                return self._fail(Failure.TIMEOUT, f"no answer after {want.sends} requests")
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
        if self.finished:
            return []
        self._move(DlState.FAILED)
        self._pending.clear()
        return [Finish(DlState.FAILED, failure, detail)]

    def _move(self, new: DlState) -> None:
        self.state = move(DL_TRANSITIONS, self.state, new, "download")
