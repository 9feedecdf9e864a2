"""The owner's budget of chunk bytes in flight to all its recipients together.

Pure like the rest of :mod:`zfs.protocol`: :class:`~zfs.protocol.pull.owner.Shares` asks
it whether a chunk request may be served now and tells it what was served and what
ended, so the owner's memory does not grow with the number of recipients.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Optional

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
        self._advance(flight, mark)
        if offset == flight.mark or (not self._waiting and self._fits(length)):
            return True
        self._waiting.append((rid, to, offset, length))
        return False

    def marked(self, to: str, mark: int, now: float) -> None:
        """The download at ``to`` holds every byte below ``mark`` (it had nothing to ask)."""
        flight = self._flights.get(to)
        if flight is not None:
            flight.last_seen = now
            self._advance(flight, mark)

    def _advance(self, flight: _Flight, mark: int) -> None:
        if mark > flight.mark:
            flight.mark = mark
            for arrived in [o for o in flight.served if o < mark]:
                self.bytes -= flight.served.pop(arrived)

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
        marked = self._waiting_for_a_mark()
        if marked is not None:
            return marked
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

    def _waiting_for_a_mark(self) -> Optional[tuple[str, str, int, int, bool]]:
        """Pop a waiting request that is now its download's lowest missing byte.

        It was queued before it became the mark; left in the queue, its download could
        not move its mark, release nothing, and wait for a timeout to ask again.
        """
        for index, (rid, to, offset, length) in enumerate(self._waiting):
            flight = self._flights.get(to)
            if flight is not None and offset == flight.mark:
                del self._waiting[index]
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
