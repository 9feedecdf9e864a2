"""The owner's side of pull with peers: one :class:`Tracker` per RID shared as a swarm.

The owner hands out every chunk a recipient gets: it serves it itself, or points the
recipient at a peer that holds it. Recipients report what they verified and wrote, and
what a peer failed to deliver; each report frees a slot of the recipient's window and
an upload slot of the chunk's source, and the owner hands out again at once. The
rules, and why:

- **Peers first, owner last.** A chunk comes from a peer whenever one that holds it
  has a free upload slot; only then from the owner. The owner injects each chunk
  about once: while some chunk was never handed out it serves those, in file order,
  one at a time per recipient, so distinct recipients seed distinct chunks; after
  that it serves only what no peer can (recipients behind NAT, the last stragglers).
  Its upload stays near one copy.
- **Fewest under way first.** A free slot goes to the recipient with the fewest
  chunks under way, not to whoever reported last, so every download link stays busy
  and none is overbooked (:meth:`Tracker._match`).
- **Least-loaded holder, rarest chunk** (:mod:`zfs.protocol.swarm.sources`): uploads
  spread over every holder, and every chunk keeps spreading, so the swarm's whole
  upload capacity is busy and no chunk is left to the end.
- **A per-peer upload limit** (``peer_slots``) and a per-recipient window bound how
  many chunks any site holds or sends at once; the owner's own (``owner_slots``) too.
  Three uploads per peer keep its link busy; more only lengthen the queue each chunk
  waits in (the simulation: 1.21x the bound at 300 recipients with 3, 1.25x with 4,
  1.32x with 8).
- **Failures route around.** A peer that served a chunk that failed its digest is
  never pointed at again (``bad``). A peer a recipient cannot reach, lost, or found
  slow or declining is avoided by that recipient; one that ``quorum`` recipients
  cannot reach is avoided by all. A recipient that had to avoid ``avoid_cap`` peers
  gets everything from the owner. A lost site's leases are freed at once.
- **Leases.** An assignment unreported after ``lease`` seconds is freed, so a lost
  message costs time, never a stuck slot; a repeated report is harmless. A recipient
  silent for a whole lease while it holds one is forgotten (it reports at least every
  request timeout while it fetches; a later Want is answered ``Rejoin``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterable, Optional, Union

from zfs.protocol.errors import LocalProtocolError
from zfs.protocol.swarm.member import Lease, Member, MemberState
from zfs.protocol.swarm.sources import Sources, lowest, members, rarest
from zfs.protocol.swarm.wire import (
    BAD, PEER_FAILURES, UNREACHABLE, Ended, Fetch, Rejoin, Send, Wait, Welcome)


@dataclass(frozen=True, slots=True)
class SendPiece:
    """Read chunk ``index`` (``length`` bytes at ``offset``); send it to ``to`` as a Piece."""

    to: str
    index: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class SendDigests:
    """Send ``to`` page ``page`` of the digest table: chunks ``first`` .. ``first+count-1``."""

    to: str
    page: int
    first: int
    count: int


@dataclass(frozen=True, slots=True)
class SendDigest:
    """Send ``to`` the whole-file digest."""

    to: str


TrackerCommand = Union[Send, SendPiece, SendDigests, SendDigest]


class Tracker:
    """Who holds which chunk of one RID, and who gets which chunk from whom.

    Args:
        rid, name, size, key: the shared file, as pull's owner names it.
        chunk_size: bytes per chunk; ``page_chunks``: digests per digest-table page.
        owner_slots: pieces the owner sends at once; ``peer_slots``: per peer.
        max_window: the most chunks one recipient may have under way.
        lease: seconds before an unreported assignment is freed.
        probes: sources tried per assignment; ``avoid_cap``, ``quorum``: see module doc.
    """

    def __init__(self, rid: str, *, name: str, size: int, key: str, chunk_size: int,
                 page_chunks: int = 1024, owner_slots: int = 4, peer_slots: int = 3,
                 max_window: int = 16, lease: float = 20.0, probes: int = 8,
                 avoid_cap: int = 16, quorum: int = 3) -> None:
        if size < 0 or chunk_size < 1 or page_chunks < 1 or owner_slots < 1 \
                or peer_slots < 1 or max_window < 1 or not lease > 0:
            raise LocalProtocolError("sizes, slots, window and lease must be positive")
        self.rid, self.size, self.chunk_size = rid, size, chunk_size
        self.total = -(-size // chunk_size)
        self.owner_bytes = 0
        self.served: dict[str, int] = {}                # bytes each peer served, as reported
        self.closed = False
        self._welcome = Welcome(rid, name, size, key, chunk_size, page_chunks)
        self._page = page_chunks
        self._owner_slots, self._window, self._lease_time = owner_slots, max_window, lease
        self._probes, self._avoid_cap, self._quorum = probes, avoid_cap, quorum
        self._all = (1 << self.total) - 1
        self._seen = 0                                  # chunks ever handed out
        self._copies = [0] * self.total                 # holders + under way, per chunk
        self._owner_uploads = 0
        self._turn = 0                                  # rotates the rarest-first start
        self._members: dict[str, Member] = {}
        self._servers = 0                               # members that listen for peers
        self._sources: Sources[str] = Sources(peer_slots)
        self._wanting: Sources[str] = Sources(max_window)   # by chunks under way
        self._expiry: deque[tuple[float, str, int, Lease]] = deque()


    @property
    def banned(self) -> tuple[str, ...]:
        """The recipients dropped as sources because a piece they served was bad."""
        return tuple(a for a, m in self._members.items() if m.banned)

    # -- from recipients

    def joined(self, to: str, window: object, endpoint: object,
               now: float) -> list[TrackerCommand]:
        """A recipient starts (or starts again) a download of this RID."""
        if self.closed:
            return [Send((to,), Ended(self.rid))]
        out = self._forget(to, now) if to in self._members else []
        size = window if type(window) is int and window > 0 else 1
        member = Member(to, endpoint if isinstance(endpoint, str) else None,
                         min(size, self._window), heard=now)
        self._members[to] = member
        self._servers += member.endpoint is not None
        return out + [Send((to,), self._welcome)]

    def wanted(self, to: str, got: Iterable[object], failed: Iterable[object],
               now: float) -> list[TrackerCommand]:
        """A recipient reports chunks written and chunks peers failed; fill its window.

        Malformed entries are skipped: a recipient can only hurt its own download.
        """
        m = self._members.get(to)
        if self.closed or m is None:
            return [Send((to,), Ended(self.rid) if self.closed else Rejoin(self.rid))]
        m.heard = now
        if m.state is MemberState.JOINED:
            m.move(MemberState.FETCHING)
        freed, nudge = 0, True
        for index in got:
            nudge = False
            freed += self._got(m, index)
        for entry in failed:
            nudge = False
            freed += self._failed(m, entry)
        self._rewant(m)
        out = self._match(self._probes + 2 * freed, now)
        if nudge and not m.leases:
            out.append(Send((to,), Wait(self.rid)))
        return out

    def left(self, to: str, ok: bool, now: float, seeds: bool = True) -> list[TrackerCommand]:
        """A recipient's download ended: a complete one seeds on (unless it said it
        will not), a failed one is forgotten."""
        m = self._members.get(to)
        if m is None:
            return []
        if ok and seeds and m.state is MemberState.FETCHING:
            m.move(MemberState.SEEDING)        # it checked the whole file: it holds it all
            self._hold(m, self._all)
            self._rewant(m)
            return []
        return self._forget(to, now)

    def digests_requested(self, to: str, page: object) -> list[TrackerCommand]:
        """A recipient wants page ``page`` of the per-chunk digest table."""
        if type(page) is not int or not 0 <= page * self._page < max(self.total, 1):
            return []
        first = page * self._page
        return [SendDigests(to, page, first, min(self._page, self.total - first))]

    def digest_requested(self, to: str) -> list[TrackerCommand]:
        """A recipient holds every chunk and wants the whole-file digest."""
        return [SendDigest(to)]

    # -- from the owner's runtime and shell

    def site_lost(self, site: str, now: float) -> list[TrackerCommand]:
        """A site went down: forget its recipients, free what they held up."""
        out: list[TrackerCommand] = []
        for address in [a for a in self._members if a.partition("/")[0] == site]:
            out += self._forget(address, now)
        return out

    def time_passed(self, now: float) -> list[TrackerCommand]:
        """Free assignments left unreported for ``lease`` seconds, and hand them out again."""
        if self.closed:
            return []
        touched: dict[str, Member] = {}
        out: list[TrackerCommand] = []
        while self._expiry and self._expiry[0][0] <= now:
            _, address, index, lease = self._expiry.popleft()
            m = self._members.get(address)
            if m is None or m.leases.get(index) is not lease:
                continue
            if now - m.heard >= self._lease_time:     # silent a whole lease: it is gone
                touched.pop(address, None)
                out += self._forget(address, now)
                continue
            self._release(m, index, delivered=False)
            touched[address] = m
        for m in touched.values():
            self._rewant(m)
        return out + self._match(self._probes + len(touched), now)

    def close(self) -> list[TrackerCommand]:
        """The share ended: tell every recipient to stop serving it."""
        if self.closed:
            return []
        self.closed = True
        members = tuple(self._members)
        self._members.clear()
        self._servers = 0
        self._sources, self._wanting = Sources(self._sources.slots), Sources(self._window)
        self._expiry.clear()
        return [Send(members, Ended(self.rid))] if members else []

    # -- reports

    def _got(self, m: Member, index: object) -> int:
        """Note a chunk written; return the slots this freed (0 or 1)."""
        if type(index) is not int or not 0 <= index < self.total:
            return 0
        freed = 0
        if index in m.leases:
            self._release(m, index, delivered=True)
            freed = 1
        self._hold(m, 1 << index)
        return freed

    def _failed(self, m: Member, entry: object) -> int:
        """Note a chunk a peer did not deliver; return the slots this freed."""
        if not (isinstance(entry, tuple) and len(entry) == 3):
            return 0
        index, peer, why = entry
        lease = m.leases.get(index) if type(index) is int else None
        source = lease.source if lease is not None else None
        if source is None or source.address != peer or why not in PEER_FAILURES:
            return 0
        self._release(m, index, delivered=False)
        if why == BAD:
            source.banned = True
            self._sources.drop(peer)
        elif why == UNREACHABLE:
            source.unreachable_by.add(m.address)
            self._relist(source)
        if why != BAD:
            m.avoid.add(peer)
            m.owner_only = len(m.avoid) > self._avoid_cap
        return 1

    # -- handing out chunks

    def _match(self, budget: int, now: float) -> list[TrackerCommand]:
        """Hand out chunks, one at a time, to the recipients with the fewest under way.

        A free upload slot goes to the recipient whose download link has least to do,
        not to whoever reported last: every link stays busy, none is overbooked. Passes
        repeat while they hand something out, so a recipient with the only free window
        fills it in one event (alone, it would otherwise have one chunk under way). At
        most ``budget`` tries in all, so one event costs a bounded amount.
        """
        out: list[TrackerCommand] = []
        misses = 0
        while budget > 0:
            handed = 0
            for address in self._wanting.candidates(budget):
                budget -= 1
                if misses >= 3 or not self._sources and \
                        self._owner_uploads >= self._owner_slots:
                    return out                   # nothing free to hand out: stop looking
                m = self._members[address]
                need = self._all & ~(m.have | m.asked)
                cmd = None if not need else \
                    self._from_peer(m, need, now) or self._from_owner(m, need, now)
                if cmd is None:
                    misses += 1
                    continue
                out.append(cmd)
                handed += 1
                self._rewant(m)
            if not handed:
                break
        return out

    def _rewant(self, m: Member) -> None:
        """List ``m`` among the recipients that want chunks, at its number under way."""
        if self._members.get(m.address) is not m:
            return
        wants = m.state is MemberState.FETCHING and len(m.leases) < m.window \
            and self._all & ~(m.have | m.asked) != 0
        self._wanting.update(m.address, len(m.leases), wants)

    def _from_peer(self, m: Member, need: int, now: float) -> Optional[TrackerCommand]:
        if m.owner_only:
            return None
        members, avoid = self._members, m.avoid
        address = self._sources.find(self._probes, lambda a: a != m.address and a not in avoid
                                     and members[a].have & need != 0)
        if address is None:
            return None
        source = members[address]
        self._turn += 1
        index = rarest(source.have & need, self.total, self._turn * 7919, self._copies)
        source.uploads += 1
        self._relist(source)
        self._lease(m, index, source, now)
        assert source.endpoint is not None
        return Send((m.address,), Fetch(self.rid, index, address, source.endpoint))

    def _from_owner(self, m: Member, need: int, now: float) -> Optional[TrackerCommand]:
        fresh = need & ~self._seen
        # While chunks remain that nobody got yet, one at a time per recipient, so that
        # distinct recipients seed distinct chunks, and only those: the owner's link
        # injects each chunk once (a second copy from it delays every recipient, since
        # the file cannot spread faster than it leaves the owner). After that, whatever
        # no peer can give. Alone (no other recipient could serve), it gets its whole
        # window from us.
        spread = not m.owner_only and self._servers - (m.endpoint is not None) > 0
        if spread and not fresh and self._seen != self._all:
            return None                    # peers will have what it needs: inject first
        limit = 1 if spread and fresh else m.window
        if self._owner_uploads >= self._owner_slots or m.owner_pieces >= limit:
            return None
        self._turn += 1
        index = lowest(fresh) if fresh else rarest(need, self.total, self._turn * 7919,
                                                   self._copies)
        self._owner_uploads += 1
        m.owner_pieces += 1
        self._lease(m, index, None, now)
        offset = index * self.chunk_size
        return SendPiece(m.address, index, offset, min(self.chunk_size, self.size - offset))

    # -- bookkeeping

    def _lease(self, m: Member, index: int, source: Optional[Member], now: float) -> None:
        lease = Lease(source, now + self._lease_time)
        m.leases[index] = lease
        m.asked |= 1 << index
        self._seen |= 1 << index
        self._copies[index] += 1
        self._expiry.append((lease.deadline, m.address, index, lease))

    def _release(self, m: Member, index: int, delivered: bool) -> None:
        """End ``m``'s lease of ``index``: free its source's slot, count the bytes."""
        lease = m.leases.pop(index)
        m.asked &= ~(1 << index)
        self._copies[index] -= 1
        if not delivered and not self._copies[index]:
            self._seen &= ~(1 << index)      # nobody has it after all: fresh again
        length = min(self.chunk_size, self.size - index * self.chunk_size)
        if lease.source is None:
            self._owner_uploads -= 1
            m.owner_pieces -= 1
            self.owner_bytes += length if delivered else 0
            return
        source = lease.source
        source.uploads -= 1
        if delivered:
            self.served[source.address] = self.served.get(source.address, 0) + length
        self._relist(source)

    def _hold(self, m: Member, chunks: int) -> None:
        """Count ``m`` as a holder of ``chunks`` (those it did not hold yet)."""
        new = chunks & ~m.have
        if new:
            m.have |= new
            for index in members(new):
                self._copies[index] += 1
            self._relist(m)

    def _relist(self, m: Member) -> None:
        if self._members.get(m.address) is not m:
            return                           # forgotten (its address may have joined again)
        usable = m.endpoint is not None and not m.banned and m.have != 0 \
            and len(m.unreachable_by) < self._quorum
        self._sources.update(m.address, m.uploads, usable)

    def _forget(self, address: str, now: float) -> list[TrackerCommand]:
        """Drop a recipient: free its leases and its holdings' count, stop offering it."""
        m = self._members.pop(address)
        self._servers -= m.endpoint is not None
        self._sources.drop(address)
        self._wanting.drop(address)
        freed = len(m.leases)
        for index in list(m.leases):
            self._release(m, index, delivered=False)
        for index in members(m.have):
            self._copies[index] -= 1
        return self._match(self._probes + freed, now)
