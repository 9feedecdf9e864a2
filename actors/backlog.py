"""Payload bytes from peers waiting in actors' mailboxes: a bound per peer and per site.

The I/O thread does not stop reading to bound a mailbox: ZeroMQ stops reading a
connection whose queue is full, its heartbeats then go unanswered, and the connection
drops with what it held (measured on libzmq 4.3.5: a ROUTER not read for 4 s with 1 s
heartbeats lost the link and most of its queue). So it refuses instead: past
``max_peer_waiting_bytes`` of one peer's payload delivered and not yet handled, or
``max_waiting_bytes`` of everyone's, that peer's messages carrying payload are not
delivered (an ask fails with ``MailboxFull`` at the asker, a tell is dropped).
Bulk senders keep a window of acked chunks, as zfs push and pull do, and never come
near it; messages without payload always pass.

The counting costs the message path a few additions: the I/O thread adds the payload
bytes it hands each actor and notes, per delivery, whose they were; the actor adds
those it has handled (each counter has one writer, so there is no lock). Actors
handle their mailbox in order, so the I/O thread settles each peer's share from the
actor's count (:meth:`Waiting.settle`). It also warns of an actor whose backlog
passes ``SiteOptions.backlog_warning``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class Backlog:
    """One actor's counts of payload bytes from peers."""

    actor: str           # its name, for the warning
    delivered: int = 0   # written by the site's I/O thread only
    handled: int = 0     # written by the actor's thread only
    warned: bool = False  # the I/O thread's: a warning stands until the actor catches up
    #: The I/O thread's: deliveries not yet settled, as (``delivered`` after it, peer, size).
    unsettled: deque[tuple[int, str, int]] = field(default_factory=deque)

    @property
    def waiting(self) -> int:
        """Bytes handed to the actor and not yet handled (read from any thread)."""
        return self.delivered - self.handled


def check(site_name: str, backlogs: dict[Any, Backlog], threshold: int) -> None:
    """Warn of each live actor whose backlog passed ``threshold``; once, until it halves.

    ``backlogs`` maps each actor's ref to its counts; stopped actors are skipped (the
    site forgets them as it spawns others).
    """
    for ref, backlog in tuple(backlogs.items()):
        if not ref.is_alive():
            continue
        waiting = backlog.waiting
        if not backlog.warned and waiting > threshold:
            backlog.warned = True
            log.warning("site %s: actor %s has %d MiB of payload from peers waiting in its "
                        "mailbox: its senders outpace it (send bulk with a window of acks)",
                        site_name, backlog.actor, waiting >> 20)
        elif backlog.warned and waiting <= threshold // 2:
            backlog.warned = False
            log.info("site %s: actor %s caught up with its senders (%d MiB waiting)",
                     site_name, backlog.actor, waiting >> 20)


#: Seconds between settlements asked for by a peer at its bound.
SETTLE_INTERVAL = 0.01


class Waiting:
    """Payload bytes delivered to actors and not yet handled, per peer and in all (I/O thread).

    Args:
        per_peer, total: the bounds (``max_peer_waiting_bytes``, ``max_waiting_bytes``).
    """

    def __init__(self, per_peer: int, total: int) -> None:
        self._per_peer_limit = per_peer
        self._total_limit = total
        self.by_peer: dict[str, int] = {}
        self.total = 0
        # Backlogs with unsettled deliveries -> their actors' "stopped" events (not the
        # refs: a stopped actor's ref must not outlive it here).
        self._open: dict[Backlog, Any] = {}
        self._next_settle = 0.0

    def admit(self, peer: str, size: int) -> bool:
        """Count ``size`` bytes of ``peer``'s toward delivery, if under both bounds."""
        if not self._fits(peer, size):
            now = time.monotonic()
            if now < self._next_settle:
                return False
            self._next_settle = now + SETTLE_INTERVAL
            self.settle()
            if not self._fits(peer, size):
                return False
        self.by_peer[peer] = self.by_peer.get(peer, 0) + size
        self.total += size
        return True

    def _fits(self, peer: str, size: int) -> bool:
        return (self.by_peer.get(peer, 0) + size <= self._per_peer_limit
                and self.total + size <= self._total_limit)

    def delivered(self, ref: Any, backlog: Backlog | None, peer: str, size: int) -> None:
        """Admitted bytes handed to the actor ``ref`` (``backlog`` None: it keeps no count,
        so they are not kept either)."""
        if backlog is None:
            self.release(peer, size)
            return
        backlog.delivered += size
        backlog.unsettled.append((backlog.delivered, peer, size))
        self._open[backlog] = ref.actor_stopped

    def release(self, peer: str, size: int) -> None:
        """Admitted bytes that were not delivered, or have been handled."""
        left = self.by_peer.get(peer, 0) - size
        if left > 0:
            self.by_peer[peer] = left
        else:
            self.by_peer.pop(peer, None)
        self.total -= size

    def settle(self) -> None:
        """Release what each actor has handled (all of it, for a stopped actor)."""
        for backlog, stopped in list(self._open.items()):
            handled = None if stopped.is_set() else backlog.handled
            entries = backlog.unsettled
            while entries and (handled is None or entries[0][0] <= handled):
                _end, peer, size = entries.popleft()
                self.release(peer, size)
            if not entries:
                del self._open[backlog]
