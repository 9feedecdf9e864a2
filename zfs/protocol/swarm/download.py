"""The recipient's side of pull with peers: one :class:`SwarmDownload` of one RID.

The owner decides what this download fetches and from whom (see
:mod:`zfs.protocol.swarm.tracker`); the download carries it out and reports. A chunk
the owner sends is written as it comes. A chunk the owner points us at a peer for is
asked of that peer, and checked against its digest from the owner's digest table
before it is written: a bad peer costs time, never a wrong byte. Whatever a peer does
not deliver (a bad piece, no link, a lost site, no answer in time, a refusal) is
reported to the owner, which hands the chunk out again elsewhere. Every write and
every failure goes into the next ``Want``, which also frees the slot::

    JOINING --Welcome, partial opened--> FETCHING --every chunk written--> VERIFYING
                                                           GetDigest, commit |
    any state but DONE --refused, owner lost, no answer, Ended, abort--> FAILED | ABORTED
                                                                     DONE <--+

Chunks are written in any order, so a resumed download says which chunks it holds
(the shell keeps that list beside the partial file) and reports them; the whole-file
digest at the end checks everything once more. Time: a peer that has not answered
within ``request_timeout`` is reported ``slow``; an owner silent that long is nudged
(an empty Want), and after ``retries`` unanswered nudges the download fails.
"""

from __future__ import annotations

from typing import Callable, Collection, Optional, Union

from zfs.protocol.names import name_problem
from zfs.protocol.errors import LocalProtocolError
from zfs.protocol.swarm.downloading import (
    DOWNLOAD_TRANSITIONS, ENDS, CheckPiece, Commit, Dial, DownloadCommand, DownloadState,
    Finish, OpenPartial, WriteChunk)
from zfs.protocol.swarm.pages import Pages
from zfs.protocol.swarm.wire import (
    BAD, DECLINED, GONE, SLOW, UNREACHABLE, Digests, Fetch, GetDigest, GetDigests, Get, Join,
    Leave, Send, Want, Welcome)

MAX_CHUNKS = 1 << 24          # the most chunks a swarm file may have (a bit set per peer)
REPORT_BATCH = 1024           # chunks per Want when a resumed download reports its holdings
MAX_UNREACHABLE = 1024        # peers remembered as unreachable (the owner stops anyway)


class SwarmDownload:
    """One download of one RID from the owner and from peers.

    Args:
        rid: the file's reference; ``owner``: the owner's address.
        endpoint: where this site serves peers (None: it does not; it then only takes).
        window_chunks: chunks under way at once (the owner may grant fewer).
        request_timeout: seconds a peer or the owner may keep us waiting.
        retries: unanswered nudges to the owner before the download fails.
        seeds: serve peers once the file is in place, until the share ends (it must
            listen somewhere: ``endpoint``).
    """

    def __init__(self, rid: str, owner: str, *, endpoint: Optional[str] = None,
                 window_chunks: int = 8, request_timeout: float = 5.0,
                 retries: int = 3, seeds: bool = True) -> None:
        if window_chunks < 1 or not request_timeout > 0 or retries < 0:
            raise LocalProtocolError("window_chunks >= 1, request_timeout > 0, retries >= 0")
        self.rid, self.owner, self.endpoint = rid, owner, endpoint
        self.seeds = seeds and endpoint is not None
        self.state = DownloadState.JOINING
        self.name, self.size, self.chunk_size, self.total = "", -1, 1, 0
        self.from_owner = 0
        self.from_peers: dict[str, int] = {}
        self.held = 0                              # bit set of chunks written
        self._window, self._timeout, self._retries = window_chunks, request_timeout, retries
        self._pages = Pages(1, 0)
        self._asked: dict[int, tuple[str, float]] = {}   # index -> (peer, deadline)
        self._writing: dict[int, Optional[str]] = {}     # index -> its source (None: owner)
        self._dialled: set[str] = set()
        self._unreachable: set[str] = set()        # peers we could not link to
        self._got: list[int] = []
        self._failed: list[tuple[int, str, str]] = []
        self._heard = 0.0
        self._nudges = 0

    @property
    def finished(self) -> bool:
        """True once the download is DONE, FAILED or ABORTED."""
        return self.state in ENDS

    def started(self, now: float) -> list[DownloadCommand]:
        """Begin: join the swarm of the RID."""
        self._heard = now
        return [self._to_owner(Join(self.rid, self._window, self.endpoint))]

    # -- from the owner

    def welcomed(self, msg: Welcome, now: float) -> list[DownloadCommand]:
        """The owner described the file."""
        if self.state is not DownloadState.JOINING:
            return []
        self._heard = now
        if type(msg.size) is not int or type(msg.chunk_size) is not int \
                or type(msg.page_chunks) is not int or msg.size < 0 or msg.chunk_size < 1 \
                or msg.page_chunks < 1 or -(-msg.size // msg.chunk_size) > MAX_CHUNKS:
            return self._fail(f"bad welcome: {msg.size!r} bytes, chunks of {msg.chunk_size!r}")
        problem = name_problem(msg.name) or name_problem(msg.key)
        if problem is not None:
            return self._fail(problem)
        self.name, self.size, self.chunk_size = msg.name, msg.size, msg.chunk_size
        self.total = -(-msg.size // msg.chunk_size)
        self._pages = Pages(msg.page_chunks, self.total)
        return [OpenPartial(msg.name, msg.key)]

    def partial_opened(self, held: Collection[int], now: float) -> list[DownloadCommand]:
        """The temporary file is open; ``held``: chunks it holds from an earlier run."""
        if self.state is not DownloadState.JOINING or self.size < 0:
            raise LocalProtocolError(f"partial_opened while {self.state.value}")
        for index in held:
            if not 0 <= index < self.total:
                raise LocalProtocolError(f"held chunk {index} is not in the file")
            self.held |= 1 << index
        if self.held == (1 << self.total) - 1:
            return self._verify()
        self._move(DownloadState.FETCHING)
        return self._holdings(sorted(held))

    def fetch_received(self, msg: Fetch, now: float) -> list[DownloadCommand]:
        """The owner points us at a peer for chunk ``msg.index``."""
        if self.state is not DownloadState.FETCHING:
            return self._left_again()
        self._heard, self._nudges = now, 0
        if type(msg.index) is int and 0 <= msg.index < self.total and self.held >> msg.index & 1:
            self._got.append(msg.index)            # our report was lost: say it again
        if not self._fresh(msg.index):
            return self._report()
        if not (isinstance(msg.peer, str) and isinstance(msg.endpoint, str)):
            return self._fail("bad fetch from the owner")
        if self._pages.digest(msg.index) is not None:
            return self._ask(msg, now)
        page = self._pages.wait(msg, now)
        return [] if page is None else [self._to_owner(GetDigests(self.rid, page))]

    def digests_received(self, msg: Digests, now: float) -> list[DownloadCommand]:
        """A page of the per-chunk digest table arrived; ask for the pieces waiting on it."""
        if self.state is not DownloadState.FETCHING:
            return []
        freed = self._pages.arrived(msg)
        if freed is None:
            return self._fail(f"a malformed page {msg.page!r} of the digest table")
        self._heard = now
        out: list[DownloadCommand] = []
        for fetch in freed:
            out += self._ask(fetch, now)
        return out

    def wait_received(self, now: float) -> list[DownloadCommand]:
        """The owner has nothing for us yet: it is there, though."""
        self._heard, self._nudges = now, 0
        return []

    def rejoin_received(self, now: float) -> list[DownloadCommand]:
        """The owner no longer knows us: join again, and report what we hold."""
        if self.state is not DownloadState.FETCHING:
            return []
        self._heard = now
        self._asked.clear()
        self._pages.clear()
        chunks = [i for i in range(self.total) if self.held >> i & 1]
        join = self._to_owner(Join(self.rid, self._window, self.endpoint))
        return [join, *self._holdings(chunks)]

    def digest_received(self, digest: object, now: float) -> list[DownloadCommand]:
        """The owner sent the whole-file digest: commit."""
        if self.state is not DownloadState.VERIFYING or not isinstance(digest, str):
            return []
        self._heard = now
        return [Commit(self.size, digest)]

    # -- pieces, from the owner or a peer

    def piece_received(self, sender: str, index: object, length: int,
                       now: float) -> list[DownloadCommand]:
        """A piece of chunk ``index`` (``length`` bytes) arrived from ``sender``."""
        if self.state is not DownloadState.FETCHING or type(index) is not int:
            return self._left_again() if sender == self.owner else []
        if sender == self.owner:
            self._heard, self._nudges = now, 0
            if 0 <= index < self.total and self.held >> index & 1:
                self._got.append(index)        # our report was lost: say it again
                return self._report()
            if not self._fresh(index) or length != self._length(index):
                return []            # a late repeat; the owner's lease sorts it out
            self._writing[index] = None
            return [WriteChunk(index, index * self.chunk_size, length)]
        asked = self._asked.get(index)
        if asked is None or asked[0] != sender:
            return []                                  # not asked of it, or too late
        del self._asked[index]
        if length != self._length(index):
            self._failed.append((index, sender, BAD))
            return self._report()
        self._writing[index] = sender
        digest = self._pages.digest(index)
        assert digest is not None               # we asked only once its page was here
        return [CheckPiece(index, digest)]

    def piece_checked(self, index: int, ok: bool, now: float) -> list[DownloadCommand]:
        """The shell digested a peer's piece: ``ok`` if it matched the owner's digest."""
        source = self._writing.get(index)
        if source is None:
            raise LocalProtocolError(f"piece_checked({index}) without a CheckPiece")
        if ok:
            return [WriteChunk(index, index * self.chunk_size, self._length(index))]
        del self._writing[index]
        self._failed.append((index, source, BAD))
        return self._report()

    def declined(self, sender: str, index: object, now: float) -> list[DownloadCommand]:
        """A peer would not serve chunk ``index``."""
        asked = self._asked.get(index) if type(index) is int else None
        if asked is None or asked[0] != sender:
            return []
        assert isinstance(index, int)
        del self._asked[index]
        self._failed.append((index, sender, DECLINED))
        return self._report()

    def peer_unreachable(self, peer: str, now: float) -> list[DownloadCommand]:
        """We could not open a link to ``peer``: give back what we asked of it, and
        whatever the owner points us at it for from now on."""
        if len(self._unreachable) < MAX_UNREACHABLE:
            self._unreachable.add(peer)
        return self._give_back(lambda p: p == peer, UNREACHABLE)

    def site_lost(self, site: str, now: float) -> list[DownloadCommand]:
        """The runtime reports a site down: the owner's ends us, a peer's is routed around."""
        if site == self.owner.partition("/")[0]:
            return self._fail("owner lost")
        return self._give_back(lambda p: p.partition("/")[0] == site, GONE)

    # -- from our own shell

    def chunk_written(self, index: int, now: float) -> list[DownloadCommand]:
        """The shell wrote chunk ``index``."""
        if index not in self._writing:
            raise LocalProtocolError(f"chunk_written({index}) without a WriteChunk")
        source = self._writing.pop(index)
        if self.finished:
            return []
        self.held |= 1 << index
        if source is None:
            self.from_owner += self._length(index)
        else:
            self.from_peers[source] = self.from_peers.get(source, 0) + self._length(index)
        self._got.append(index)
        out = self._report()
        if self.held == (1 << self.total) - 1:
            out += self._verify()
        return out

    def committed(self) -> list[DownloadCommand]:
        """The file is checked and in place."""
        if self.state is not DownloadState.VERIFYING:
            return []
        return self._end(DownloadState.DONE, "")

    def commit_failed(self, detail: str) -> list[DownloadCommand]:
        """The whole file did not match its digest (the shell deleted it)."""
        return self._fail(f"integrity: {detail}")

    def refused(self, detail: str) -> list[DownloadCommand]:
        """The owner refused the RID (unknown, expired, changed) or ended its share."""
        return self._fail(detail)

    def local_error(self, detail: str) -> list[DownloadCommand]:
        """Our own side failed (disk full, temporary file not creatable)."""
        return self._fail(f"local: {detail}")

    def abort_requested(self) -> list[DownloadCommand]:
        """Our caller aborted the download."""
        return [] if self.finished else self._end(DownloadState.ABORTED, "aborted")

    def time_passed(self, now: float) -> list[DownloadCommand]:
        """Report slow peers, ask again for lost digest pages, nudge or give up on the owner."""
        if self.finished:
            return []
        for index, (peer, deadline) in list(self._asked.items()):
            if deadline <= now:
                del self._asked[index]
                self._failed.append((index, peer, SLOW))
        out = self._report()
        for page in self._pages.overdue(now, self._timeout):
            out.append(self._to_owner(GetDigests(self.rid, page)))
        if now - self._heard < self._timeout * (self._nudges + 1):
            return out
        if self._nudges >= self._retries:
            return self._fail(f"no answer from the owner within "
                              f"{self._timeout * (self._retries + 1):g} s")
        self._nudges += 1
        return out + [self._to_owner(self._nudge())]

    # -- internals

    def _length(self, index: int) -> int:
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def _fresh(self, index: object) -> bool:
        """True if chunk ``index`` is in the file and neither held nor under way here."""
        return type(index) is int and 0 <= index < self.total and not self.held >> index & 1 \
            and index not in self._asked and index not in self._writing \
            and not self._pages.waiting(index)

    def _ask(self, msg: Fetch, now: float) -> list[DownloadCommand]:
        if msg.peer in self._unreachable:
            self._failed.append((msg.index, msg.peer, UNREACHABLE))
            return self._report()
        out: list[DownloadCommand] = []
        if msg.peer not in self._dialled:
            self._dialled.add(msg.peer)
            out.append(Dial(msg.peer, msg.endpoint))
        self._asked[msg.index] = (msg.peer, now + self._timeout)
        return out + [Send((msg.peer,), Get(self.rid, msg.index))]

    def _give_back(self, match: Callable[[str], bool], why: str) -> list[DownloadCommand]:
        for index, (peer, _) in list(self._asked.items()):
            if match(peer):
                del self._asked[index]
                self._failed.append((index, peer, why))
        for fetch in self._pages.give_back(match):
            self._failed.append((fetch.index, fetch.peer, why))
        return self._report()

    def _left_again(self) -> list[DownloadCommand]:
        """The owner still hands us chunks after we ended: our Leave was lost, say it again."""
        if self.state is not DownloadState.DONE:
            return []
        return [self._to_owner(self._leave())]

    def _leave(self) -> Leave:
        return Leave(self.rid, self.state is DownloadState.DONE, self.from_owner,
                     sum(self.from_peers.values()), self.seeds)

    def _nudge(self) -> Union[Join, Want, GetDigest]:
        """What to send the owner again when it has been silent: our last question."""
        if self.state is DownloadState.JOINING:
            return Join(self.rid, self._window, self.endpoint)
        if self.state is DownloadState.VERIFYING:
            return GetDigest(self.rid)
        return Want(self.rid, (), ())

    def _report(self) -> list[DownloadCommand]:
        """One Want with what was written and what failed since the last one."""
        if not (self._got or self._failed) or self.state is not DownloadState.FETCHING:
            return []
        want = Want(self.rid, tuple(self._got), tuple(self._failed))
        self._got, self._failed = [], []
        return [self._to_owner(want)]

    def _holdings(self, chunks: list[int]) -> list[DownloadCommand]:
        """Wants that report ``chunks`` as held, in batches; at least one, to start."""
        batches = [chunks[i:i + REPORT_BATCH] for i in range(0, len(chunks), REPORT_BATCH)]
        return [self._to_owner(Want(self.rid, tuple(b), ())) for b in batches or [[]]]

    def _verify(self) -> list[DownloadCommand]:
        self._move(DownloadState.VERIFYING)
        return [self._to_owner(GetDigest(self.rid))]

    def _to_owner(self, message: Union[Join, Want, GetDigests, GetDigest, Leave]) -> Send:
        return Send((self.owner,), message)

    def _fail(self, detail: str) -> list[DownloadCommand]:
        return [] if self.finished else self._end(DownloadState.FAILED, detail)

    def _end(self, state: DownloadState, detail: str) -> list[DownloadCommand]:
        self._move(state)
        self._asked.clear()
        self._pages.clear()
        return [self._to_owner(self._leave()),
                Finish(state, detail, self.from_owner, tuple(sorted(self.from_peers.items())))]

    def _move(self, new: DownloadState) -> None:
        if new not in DOWNLOAD_TRANSITIONS[self.state]:
            raise LocalProtocolError(f"download cannot go from {self.state.name} to {new.name}")
        self.state = new
