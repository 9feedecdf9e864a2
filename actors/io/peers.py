"""What a site's I/O thread knows of its peers, and the messages it holds for them.

A peer is found by name (outbound messages), by ROUTER routing id (inbound messages
on connections it opened to us) and by file descriptor (the ROUTER monitor's events).
Messages a peer's queue has no room for wait here, in order, and the table keeps
the total of their bytes so the I/O thread can stop taking more. The table is
bounded: a peer that is down and that we do not dial is forgotten after a while,
or at once when a new name needs its place. Used by the I/O thread only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import zmq

from actors.io.frames import message_size


@dataclass(eq=False)
class _Peer:
    """What the I/O thread knows of one peer site."""

    name: str
    sender_prefix: str = field(init=False)  # "name/": how its actors' addresses begin
    dealer: zmq.Socket[bytes] | None = None
    monitor: zmq.Socket[bytes] | None = None
    endpoint: str = ""  # where our DEALER dials it
    connected_once: bool = False
    routing_id: bytes | None = None
    fd: int | None = None
    #: Its greeted connection closed, and no other has said hello since: a message
    #: from it now comes on a new connection, sent before that one's hello.
    greeted_connection_closed: bool = False
    incarnation: str = ""
    up: bool = False
    refused: str | None = None
    retry_hello_at: float = 0.0  # when a "busy" refusal is worth another hello
    last_heard: float = 0.0
    router_heard: float = 0.0  # a message read from its connection to our ROUTER
    dealer_heard: float = 0.0  # a message read from our DEALER's connection to it
    dealer_fd: int | None = None  # our DEALER's current connection, once connected
    down_at: float = 0.0
    last_sent: float = 0.0
    pending: deque[Sequence[Any]] = field(default_factory=deque)
    pending_bytes: int = 0
    congested: bool = False  # its backlog is over its share: senders to it wait
    # What actors.io.outflow grants and measures (bytes, kernel counters, when):
    sent: int = 0  # handed to ZeroMQ, ever
    flight_limit: int = 0  # may hand to ZeroMQ up to this ``sent`` without asking
    reserved: int = 0  # its part of the site's unacknowledged bytes
    in_flight: int = 0  # unacknowledged when last measured
    floor: int = 0  # lowest ``sent - acked`` seen on its connection
    flight_fd: int | None = None
    acked: int = 0
    progressed_at: float = 0.0  # its host last acknowledged bytes (or its backlog shrank)

    def __post_init__(self) -> None:
        self.sender_prefix = self.name + "/"


class Peers:
    """The I/O thread's peers by name, routing id and file descriptor, with their backlog."""

    def __init__(self) -> None:
        self._by_name: dict[str, _Peer] = {}
        self._by_routing_id: dict[bytes, _Peer] = {}
        self._by_fd: dict[int, str] = {}
        #: Bytes waiting in every peer's backlog.
        self.pending_bytes = 0

    def __iter__(self) -> Iterator[_Peer]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str) -> _Peer | None:
        """The peer named ``name``, if known."""
        return self._by_name.get(name)

    def add(self, name: str) -> _Peer:
        """The peer named ``name``, made known first if it is not."""
        peer = self._by_name.get(name)
        if peer is None:  # made only when new: a _Peer is not free to build per message
            peer = self._by_name[name] = _Peer(name)
        return peer

    def at(self, routing_id: bytes) -> _Peer | None:
        """The peer whose current connection is ``routing_id``, if it said hello."""
        return self._by_routing_id.get(routing_id)

    def greeted(self, name: str, routing_id: bytes, incarnation: str, fd: int | None) -> _Peer:
        """Record that the connection ``routing_id`` (on ``fd``, None if not known) said
        hello as ``name``."""
        peer = self.add(name)
        if peer.routing_id is not None and peer.routing_id != routing_id:
            self._by_routing_id.pop(peer.routing_id, None)
        peer.routing_id, peer.incarnation = routing_id, incarnation
        peer.greeted_connection_closed = False
        self._by_routing_id[routing_id] = peer
        # Without a descriptor (a known routing id, reconnected) the old one is stale:
        # its late disconnect event must not take this peer down; the next message
        # from the peer tells the new one (see set_fd).
        self.set_fd(peer, fd)
        return peer

    def set_fd(self, peer: _Peer, fd: int | None) -> None:
        """Record the descriptor of ``peer``'s current connection (None: not known)."""
        if peer.fd is not None and self._by_fd.get(peer.fd) == peer.name:
            del self._by_fd[peer.fd]
        peer.fd = fd
        if fd is not None:
            self._by_fd[fd] = peer.name
        if peer.dealer is None:
            peer.flight_limit = peer.sent  # measured on this connection from now on

    def unroute(self, peer: _Peer) -> None:
        """Forget ``peer``'s connection to our ROUTER (it is being cut): messages from it
        no longer count as the peer's."""
        if peer.routing_id is not None and self._by_routing_id.get(peer.routing_id) is peer:
            del self._by_routing_id[peer.routing_id]
        peer.routing_id = None
        self.set_fd(peer, None)

    def forgettable(self, now: float, after: float) -> list[_Peer]:
        """Peers down for over ``after`` seconds that we do not dial, oldest first."""
        idle = [peer for peer in self._by_name.values()
                if not peer.up and peer.dealer is None and now - peer.down_at > after]
        return sorted(idle, key=lambda peer: peer.down_at)

    def forget(self, peer: _Peer) -> None:
        """Drop ``peer`` from the table (it is down, and we do not dial it)."""
        self.unroute(peer)
        self.drop_pending(peer)
        self._by_name.pop(peer.name, None)

    def connection_closed(self, fd: int) -> _Peer | None:
        """Forget the connection on ``fd``; the peer it was the connection of, if any."""
        name = self._by_fd.pop(fd, None)
        peer = self._by_name.get(name) if name else None
        if peer is not None and peer.fd == fd:
            peer.fd = None
            peer.greeted_connection_closed = True
            return peer
        return None

    def hold(self, peer: _Peer, frames: Sequence[Any]) -> None:
        """Queue a message behind ``peer``'s backlog."""
        size = message_size(frames)
        if not peer.pending:  # from now on, its backlog must move (actors.io.outflow)
            peer.progressed_at = time.monotonic()
        peer.pending.append(frames)
        peer.pending_bytes += size
        self.pending_bytes += size

    def flush(self, try_send: Callable[[_Peer, Sequence[Any]], bool]) -> None:
        """Send every backlog in order, each until ``try_send`` finds its queue full."""
        for peer in list(self._by_name.values()):
            while peer.pending and try_send(peer, peer.pending[0]):
                if not peer.pending:  # the send found the peer gone and dropped its backlog
                    break
                size = message_size(peer.pending.popleft())
                peer.pending_bytes -= size
                self.pending_bytes -= size
                peer.progressed_at = time.monotonic()

    def drop_pending(self, peer: _Peer) -> int:
        """Drop ``peer``'s backlog; how many messages it held."""
        count = len(peer.pending)
        if count:
            self.pending_bytes -= peer.pending_bytes
            peer.pending.clear()
            peer.pending_bytes = 0
        return count
