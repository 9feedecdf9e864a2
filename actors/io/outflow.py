"""Bytes queued toward each peer, bounded per peer and for the site, and peers that stopped reading.

ZeroMQ queues what a site sends to a peer until the kernel takes it, and its
high-water mark counts messages: 1,000 messages of 1 MiB toward a peer that does not
read are 1 GB held. So the I/O thread hands a peer's messages to ZeroMQ only while
the bytes its host has not acknowledged (TCP, ``actors.io.fds``) stay under
``max_unacked_bytes`` (and those of all peers under ``max_site_unacked_bytes``); the
rest wait in the peer's backlog (``actors.io.peers``), where they are counted
exactly. A backlog over ``max_peer_pending_bytes`` makes senders to that peer wait
(the site marks it congested), not everyone: one slow peer never stalls the others.
A peer whose host acknowledged nothing for ``stalled_peer_timeout`` while bytes
wait for it is cut: its link is dropped with everything queued for it.

What was sent is known exactly; what was acknowledged includes ZeroMQ's own framing
and heartbeats, so the unacknowledged figure is measured from the lowest it has been
on that connection (it never reads higher than the truth). The kernel is asked only
when a peer's grant runs out, so a peer that keeps up costs a counter addition per
message. Where the kernel cannot tell (ipc://), only the high-water mark and the
backlog bound what is queued.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from actors.io.fds import TcpCounters
from actors.io.peers import _Peer
from actors.options import SiteOptions

#: Seconds between re-measuring every peer to take back grants they do not use.
RECLAIM_INTERVAL = 0.005
#: A grant big enough that a peer that keeps up never waits for one.
UNLIMITED = 1 << 62


class Outflow:
    """Grants each peer room to send, from the kernel's acknowledgements (I/O thread only)."""

    def __init__(self, options: SiteOptions, counters: TcpCounters) -> None:
        self._share = options.max_unacked_bytes
        self._site = options.max_site_unacked_bytes
        self._counters = counters
        self._reserved = 0  # the sum of every peer's reserved bytes
        self._next_reclaim = 0.0

    def room(self, peer: _Peer, size: int, peers: Iterable[_Peer]) -> bool:
        """Whether ``peer`` may hand ``size`` more bytes to ZeroMQ now; grants it room if so.

        Called only when a send would pass ``peer.flight_limit``.
        """
        now = time.monotonic()
        in_flight = self.measure(peer, now)
        if in_flight is None:  # nothing to measure: ZeroMQ's high-water mark bounds it
            self._set_reserved(peer, 0)
            peer.flight_limit = peer.sent + UNLIMITED
            return True
        others = self._reserved - peer.reserved
        room = min(self._share, self._site - others) - in_flight
        if room < size and in_flight and now >= self._next_reclaim:
            self._next_reclaim = now + RECLAIM_INTERVAL
            self._reclaim(peer, peers, now)
            others = self._reserved - peer.reserved
            room = min(self._share, self._site - others) - in_flight
        # A link with nothing in flight always takes one message, whatever its size.
        grant = 0 if room < size and in_flight else max(room, size)
        self._set_reserved(peer, in_flight + grant)
        peer.flight_limit = peer.sent + grant
        return grant >= size

    def measure(self, peer: _Peer, now: float) -> int | None:
        """Bytes handed to ZeroMQ for ``peer`` that its host has not acknowledged (None:
        the kernel cannot tell); notes when the host last acknowledged something."""
        fd = peer.dealer_fd if peer.dealer is not None else peer.fd
        counts = self._counters.read(fd) if fd is not None else None
        if counts is None:
            return None
        acked = counts[1]
        if fd != peer.flight_fd or acked < peer.acked:  # a new connection
            # A DEALER keeps what it queued across a reconnect: still in flight.
            carried = peer.in_flight if peer.dealer is not None else 0
            peer.flight_fd, peer.floor = fd, peer.sent - acked - carried
            peer.acked, peer.progressed_at = acked, now
        elif acked != peer.acked:
            peer.acked, peer.progressed_at = acked, now
        raw = peer.sent - acked
        if raw < peer.floor:
            peer.floor = raw
        peer.in_flight = raw - peer.floor
        return peer.in_flight

    def forget(self, peer: _Peer) -> None:
        """``peer``'s queue is gone (it was cut or is forgotten): release its reservation."""
        self._set_reserved(peer, 0)
        peer.in_flight, peer.flight_limit, peer.flight_fd = 0, 0, None

    def _reclaim(self, asking: _Peer, peers: Iterable[_Peer], now: float) -> None:
        """Re-measure every other peer holding a reservation; unused grants come back."""
        for peer in peers:
            if peer is asking or not peer.reserved:
                continue
            in_flight = self.measure(peer, now)
            self._set_reserved(peer, in_flight or 0)
            peer.flight_limit = peer.sent  # it asks again before its next send

    def _set_reserved(self, peer: _Peer, reserved: int) -> None:
        self._reserved += reserved - peer.reserved
        peer.reserved = reserved

    def stalled(self, peer: _Peer, now: float, timeout: float) -> int:
        """Bytes queued toward ``peer`` (backlog and unacknowledged) if its host has
        acknowledged nothing (nor its backlog shrunk) for ``timeout`` while bytes wait
        for it; else 0."""
        in_flight = self.measure(peer, now) if peer.pending or peer.in_flight else 0
        if not (peer.pending or in_flight) or (in_flight is None and not peer.up):
            peer.progressed_at = now  # nothing waits, or no link yet to judge it by
            return 0
        if now - peer.progressed_at <= timeout:
            return 0
        return peer.pending_bytes + (in_flight or 0)
