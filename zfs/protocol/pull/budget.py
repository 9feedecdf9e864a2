"""The owner's budget of chunk bytes in flight, shared fairly between recipient sites.

Pure like the rest of :mod:`zfs.protocol`: :class:`~zfs.protocol.pull.owner.Shares` asks
it whether a chunk request may be served now and tells it what was served and what
ended, so that the owner's memory does not grow with the number of recipients,
downloads, or names a peer makes up.

Credit comes from what a recipient confirms, not from what it asks: each request says
``mark``, the recipient's lowest missing byte (every byte below it has arrived), and
only bytes below a download's mark leave the budget. So a peer that asks and never
reads holds at most its share, gets nothing more, and is cut once nothing of its has
been confirmed for ``stall_timeout`` (:meth:`InFlight.stalled`).

Fairness: a site may hold at most ``budget // (active sites + 1)`` of a pool (or one
chunk), so one site alone leaves room for the next to start at once; waiting requests
are served round-robin by site, a download's request for its own mark first.

Two pools of ``budget`` bytes each: requests draw on the first; a download's request for
its own mark may also draw on the second, a reserve. Without it a download holding
chunks past its mark (its requests were reordered, or the mark's chunk was lost) could
wait forever for room only its own confirmation would free; a chunk at the mark is
confirmed as soon as it arrives, so the reserve always drains. A request asked again
(its chunk lost on the way) is served again without new credit. Bytes in flight never
pass twice the budget (plus one chunk when nothing else is in flight).
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Optional


class Decision(enum.Enum):
    """What to do with a chunk request now."""

    SERVE = "serve"      # send the chunk (then call InFlight.served)
    WAIT = "wait"        # queued; next_waiting() gives it back when there is room
    DROP = "drop"        # the recipient confirmed those bytes already: nothing to send
    BUSY = "busy"        # over the per-site limits: refuse it


_MAIN, _RESERVE = 0, 1   # the two pools


@dataclass(slots=True)
class _Flight:
    """One download (a recipient actor) and what it holds of the budget."""

    rid: str
    site: str
    last_seen: float
    mark: int = 0                                        # every byte below it arrived
    # offset -> (length, pool) of chunks served and not yet confirmed
    served: dict[int, tuple[int, int]] = field(default_factory=dict)


@dataclass(slots=True)
class _Site:
    """A recipient site: its bytes in flight per pool, its queue, when it last confirmed."""

    pools: list[int] = field(default_factory=lambda: [0, 0])
    confirmed_at: float = 0.0
    downloads: int = 0
    waiting: deque[tuple[str, str, int, int]] = field(default_factory=deque)  # rid, to, off, len


#: One waiting request as next_waiting returns it: rid, to, offset, length, live.
Waiting = tuple[str, str, int, int, bool]


class InFlight:
    """The owner's budget of chunk bytes served and not yet confirmed.

    Args:
        budget: bytes in flight to all recipients together, in each of the two pools.
        max_downloads_per_site: downloads (recipient actors) one site may run at once.
        max_waiting_per_site: requests of one site that may wait for room at once.
        stall_timeout: seconds a site may hold bytes in flight without confirming any.
    """

    def __init__(self, budget: int, max_downloads_per_site: int = 256,
                 max_waiting_per_site: int = 2048, stall_timeout: float = 30.0) -> None:
        self.budget = budget
        self._pools = [0, 0]
        self._max_downloads = max_downloads_per_site
        self._max_waiting = max_waiting_per_site
        self._stall = stall_timeout
        self._flights: dict[str, _Flight] = {}                  # by the downloading actor
        self._sites: OrderedDict[str, _Site] = OrderedDict()    # round-robin order
        self._chosen = _MAIN        # the pool the last SERVE decision drew on

    @property
    def bytes(self) -> int:
        """Chunk bytes in flight now, both pools."""
        return self._pools[_MAIN] + self._pools[_RESERVE]

    def requested(self, rid: str, site: str, to: str, offset: int, length: int, mark: int,
                  now: float) -> Decision:
        """Note a request; SERVE it now (then call :meth:`served`), WAIT, DROP or BUSY."""
        flight = self._flights.get(to)
        entry = self._site(site, now)
        if flight is None:
            if entry.downloads >= self._max_downloads:
                return Decision.BUSY
            flight = self._flights[to] = _Flight(rid, site, now)
            entry.downloads += 1
        flight.last_seen = now
        self._advance(flight, mark, now)
        if offset < flight.mark:
            return Decision.DROP
        if offset in flight.served:         # asked again (lost on the way): no new credit
            self._chosen = flight.served[offset][1]
            return Decision.SERVE
        if not entry.waiting and self._room(entry, flight, offset, length):
            return Decision.SERVE
        request = (rid, to, offset, length)
        if request in entry.waiting:        # asked again while waiting: it waits once
            return Decision.WAIT
        if len(entry.waiting) >= self._max_waiting:
            return Decision.BUSY
        entry.waiting.append(request)
        return Decision.WAIT

    def marked(self, to: str, mark: int, now: float) -> None:
        """The download at ``to`` holds every byte below ``mark`` (it had nothing to ask)."""
        flight = self._flights.get(to)
        if flight is not None:
            flight.last_seen = now
            self._advance(flight, mark, now)

    def served(self, to: str, offset: int, length: int) -> None:
        """Count a chunk as in flight (from the pool the last SERVE drew on)."""
        flight = self._flights[to]
        old_length, pool = flight.served.get(offset, (0, self._chosen))
        flight.served[offset] = (length, pool)
        self._charge(flight.site, pool, length - old_length)

    def next_waiting(self) -> Optional[Waiting]:
        """Pop a waiting request that may go now, round-robin by site; None if none may.

        Requests for bytes that arrived meanwhile are dropped; those of a download that
        ended come back with ``live`` False (to be refused or dropped), whatever the room.
        """
        for _ in range(len(self._sites)):
            site, entry = next(iter(self._sites.items()))
            self._sites.move_to_end(site)
            found = self._pop_ready(entry)
            if found is not None:
                return found
        return None

    def ended(self, to: str) -> None:
        """The download at ``to`` ended: nothing of it is in flight any more."""
        flight = self._flights.pop(to, None)
        if flight is None:
            return
        for length, pool in flight.served.values():
            self._charge(flight.site, pool, -length)
        self._sites[flight.site].downloads -= 1
        self._forget_if_idle(flight.site)

    def ended_where(self, site: Optional[str] = None, rids: frozenset[str] = frozenset(),
                    idle_since: float = float("-inf")) -> None:
        """End every download of ``site``, of one of ``rids``, or silent since ``idle_since``."""
        for to, flight in list(self._flights.items()):
            if flight.site == site or flight.rid in rids or flight.last_seen < idle_since:
                self.ended(to)
        if site is not None and site in self._sites:
            self._sites[site].waiting.clear()
            self._forget_if_idle(site)

    def stalled(self, now: float) -> list[str]:
        """Cut every site that held bytes in flight for ``stall_timeout`` confirming none.

        Its downloads end and its waiting requests are dropped, so its share returns to
        the others; returns the sites cut.
        """
        cut = [site for site, entry in self._sites.items()
               if sum(entry.pools) and now - entry.confirmed_at > self._stall]
        for site in cut:
            self.ended_where(site=site)
        return cut

    def site_bytes(self, site: str) -> int:
        """Bytes in flight to ``site`` now."""
        entry = self._sites.get(site)
        return sum(entry.pools) if entry is not None else 0

    # -- internals

    def _site(self, site: str, now: float) -> _Site:
        entry = self._sites.get(site)
        if entry is None:
            entry = self._sites[site] = _Site(confirmed_at=now)
        return entry

    def _charge(self, site: str, pool: int, length: int) -> None:
        self._pools[pool] += length
        self._sites[site].pools[pool] += length

    def _advance(self, flight: _Flight, mark: int, now: float) -> None:
        if mark <= flight.mark:
            return
        flight.mark = mark
        for arrived in [o for o in flight.served if o < mark]:
            length, pool = flight.served.pop(arrived)
            self._charge(flight.site, pool, -length)
            self._sites[flight.site].confirmed_at = now

    def _room(self, entry: _Site, flight: _Flight, offset: int, length: int) -> bool:
        """Whether the chunk fits now; sets the pool it draws on."""
        if self.bytes == 0 or self._fits(entry, _MAIN, length):
            self._chosen = _MAIN
            return True
        if offset == flight.mark and self._fits(entry, _RESERVE, length):
            self._chosen = _RESERVE
            return True
        return False

    def _fits(self, entry: _Site, pool: int, length: int) -> bool:
        if self._pools[pool] + length > self.budget:
            return False
        held = entry.pools[pool]
        return held == 0 or held + length <= self.budget // (len(self._sites) + 1)

    def _pop_ready(self, entry: _Site) -> Optional[Waiting]:
        """The site's next request that may go now: its downloads' marks first."""
        queue, index = entry.waiting, 0
        while index < len(queue):
            rid, to, offset, length = queue[index]
            flight = self._flights.get(to)
            if flight is None:
                del queue[index]
                return rid, to, offset, length, False
            if offset < flight.mark:        # arrived meanwhile (a resent request)
                del queue[index]
                continue
            if offset == flight.mark and self._room(entry, flight, offset, length):
                del queue[index]
                return rid, to, offset, length, True
            index += 1
        if queue:
            rid, to, offset, length = queue[0]
            flight = self._flights[to]
            if self._room(entry, flight, offset, length):
                queue.popleft()
                return rid, to, offset, length, True
        return None

    def _forget_if_idle(self, site: str) -> None:
        entry = self._sites.get(site)
        if entry is not None and not entry.downloads and not entry.waiting \
                and not sum(entry.pools):
            del self._sites[site]
