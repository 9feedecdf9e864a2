"""What a site's I/O thread knows of its peers, and the messages it holds for them.

A peer is found by name (outbound messages), by ROUTER routing id (inbound messages
on connections it opened to us) and by file descriptor (the ROUTER monitor's events).
Messages a peer's queue has no room for wait here, in order, and the table keeps
the total of their bytes so the I/O thread can stop taking more. Used by the I/O
thread only.
"""

from __future__ import annotations

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
    dealer: zmq.Socket | None = None
    monitor: zmq.Socket | None = None
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
    last_sent: float = 0.0
    pending: deque[Sequence[Any]] = field(default_factory=deque)
    pending_bytes: int = 0

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

    def drop_pending(self, peer: _Peer) -> int:
        """Drop ``peer``'s backlog; how many messages it held."""
        count = len(peer.pending)
        if count:
            self.pending_bytes -= peer.pending_bytes
            peer.pending.clear()
            peer.pending_bytes = 0
        return count
