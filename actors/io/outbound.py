"""Sending to peers from the I/O thread: at once, or behind a peer's backlog.

A message goes to ZeroMQ when the peer's queue has room and ``actors.io.outflow``
grants it (its host acknowledges what was sent before); otherwise it waits in the
peer's backlog (``actors.io.peers``), flushed in order each round of the poll loop.
Two limits keep backlogs from growing without bound: past ``max_peer_pending_bytes``
for one peer, the site marks it congested and senders to it (only) wait; past
``max_pending_bytes`` for all peers, the I/O thread stops taking messages from every
sender until the backlogs halve. Whatever empties the backlogs (sends, a peer lost,
cut or forgotten) lets the waiting senders go on at once. A message for a site we are
not linked to (or whose link is down) goes to the next hop of its route, wrapped
(``actors.io.relay``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import zmq

from actors.errors import PeerLost, PeerRefused, UnknownSite
from actors.io import handshake
from actors.io.fds import TcpCounters
from actors.io.frames import NOBLOCK, NOBLOCK_MORE, message_size, send_first, send_parts
from actors.io.links import LinkLifecycle
from actors.io.ports import LinkHandler
from actors.io.outflow import Outflow
from actors.io.peers import Peers, _Peer
from actors.io.relay import Relay
from actors.options import SiteOptions

log = logging.getLogger(__name__)


class Outbound:
    """The site's sends, backlogs and their limits (I/O thread only).

    Args:
        pause: ``pause(True)`` stops the I/O thread taking messages from senders,
            ``pause(False)`` resumes it.
    """

    def __init__(self, site_name: str, options: SiteOptions, peers: Peers,
                 handler: LinkHandler, counters: TcpCounters,
                 pause: Callable[[bool], None]) -> None:
        self._site_name = site_name
        self._options = options
        self._peers = peers
        self._handler = handler
        self._outflow = Outflow(options, counters)
        self._pause = pause
        self.paused = False
        self._congested: set[_Peer] = set()
        self.router: zmq.Socket[bytes] | None = None  # the site's ROUTER, once bound
        self.links: LinkLifecycle | None = None  # set once the lifecycle exists
        self.relay: Relay | None = None  # set once the relay exists

    def send(self, name: str, frames: Sequence[Any]) -> None:
        """Send a message to a peer now, or queue it behind that peer's backlog; one for
        a site routed through a peer goes to that peer, wrapped."""
        peer = self._peers.get(name)
        relay = self.relay
        if (peer is None or not peer.up) and relay is not None:
            via = relay.via(name)
            if via is not None:
                self.send(via, relay.wrap(name, frames))
                return
        if peer is None or (peer.dealer is None and peer.routing_id is None):
            self._handler.on_undeliverable(name, _frame_bytes(frames[0]),
                                           UnknownSite(f"{name}: unknown site"))
            return
        if peer.refused is not None:
            self._handler.on_undeliverable(name, _frame_bytes(frames[0]),
                                           PeerRefused(f"{name} refused: {peer.refused}"))
            return
        if peer.pending or not self.try_send(peer, frames):
            self._peers.hold(peer, frames)
            if peer.pending_bytes > self._options.max_peer_pending_bytes and not peer.congested:
                peer.congested = True
                self._congested.add(peer)
                self._handler.on_peer_congested(peer.name, True)
            if not self.paused and self._peers.pending_bytes > self._options.max_pending_bytes:
                self.paused = True
                self._pause(True)

    def try_send(self, peer: _Peer, frames: Sequence[Any]) -> bool:
        """Send without blocking; False when the peer's queue is full or its grant used up."""
        size = len(frames[0]) if len(frames) == 1 else message_size(frames)
        if peer.sent + size > peer.flight_limit and not self._outflow.room(
                peer, size, self._peers):
            return False
        try:
            if peer.dealer is not None:
                send_parts(peer.dealer, frames, NOBLOCK)
            else:
                assert peer.routing_id is not None and self.router is not None
                send_first(self.router, peer.routing_id, NOBLOCK_MORE)
                send_parts(self.router, frames, 0)
        except zmq.Again:
            return False
        except zmq.ZMQError as err:  # EHOSTUNREACH: the peer's connection is gone
            self._handler.on_undeliverable(peer.name, _frame_bytes(frames[0]),
                                           PeerLost(f"{peer.name}: {err}"))
            assert self.links is not None
            self.links.peer_down(peer, f"unreachable ({err})")
            return True
        peer.sent += size
        peer.last_sent = time.monotonic()
        return True

    def router_send(self, routing_id: bytes, frames: Sequence[Any]) -> None:
        """Send to a connection by routing id, whether or not it said hello."""
        assert self.router is not None
        try:
            send_first(self.router, routing_id, NOBLOCK_MORE)
            send_parts(self.router, frames, 0)
        except zmq.ZMQError as err:
            assert self.links is not None
            self.links.log.info("site %s: reply to an unnamed peer not sent: %s",
                                self._site_name, err)

    def refuse(self, routing_id: bytes, code: str, text: str) -> None:
        """Send REFUSE ``[code, text]`` to the connection ``routing_id``."""
        self.router_send(routing_id, [handshake.refuse(code, text)])

    def flush(self) -> None:
        """Send what the backlogs hold, as far as queues and grants allow; let waiting
        senders go on once the backlogs are small enough."""
        if self._peers.pending_bytes:
            self._peers.flush(self.try_send)
        for peer in list(self._congested):
            if peer.pending_bytes <= self._options.max_peer_pending_bytes // 2:
                peer.congested = False
                self._congested.discard(peer)
                self._handler.on_peer_congested(peer.name, False)
        self._resume_if_drained()

    def released(self, peer: _Peer) -> None:
        """``peer``'s backlog was dropped (it is down, cut or forgotten): what waited on
        it goes on at once."""
        self._outflow.forget(peer)
        if peer.congested:  # its state is down now: senders to it see that instead
            peer.congested = False
            self._congested.discard(peer)
        self._resume_if_drained()

    def _resume_if_drained(self) -> None:
        # The cause of a site that once stopped sending for good: the backlog of a peer
        # that went away was dropped, and nothing looked at the pause again.
        if self.paused and self._peers.pending_bytes <= self._options.max_pending_bytes // 2:
            self.paused = False
            self._pause(False)

    def stalled(self, now: float) -> list[tuple[_Peer, int]]:
        """Peers whose hosts acknowledged nothing for ``stalled_peer_timeout`` while bytes
        wait for them, each with the bytes queued toward it."""
        timeout = self._options.stalled_peer_timeout
        found = []
        for peer in self._peers:
            queued = self._outflow.stalled(peer, now, timeout)
            if queued:
                found.append((peer, queued))
        return found


def _frame_bytes(frame: Any) -> bytes:
    return frame.bytes if isinstance(frame, zmq.Frame) else bytes(frame)
