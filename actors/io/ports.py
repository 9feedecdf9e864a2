"""What a peer link's lifecycle (``actors.io.links``) talks to, as protocols.

Above it the site (:class:`LinkHandler`, the ``actors.dispatch.Dispatcher``), beside
it the relay (:class:`Router`), below it the I/O thread that owns the sockets
(:class:`Wire`). Kept apart so each side can be read, and replaced in a test, without
the lifecycle's rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import zmq

from actors.codec import Header
from actors.errors import ActorsError
from actors.io.peers import _Peer


class LinkHandler(Protocol):
    """What the I/O thread tells its site. Every call runs on the I/O thread."""

    def on_message(self, peer: str, header: Header, payload: list[zmq.Frame]) -> None: ...

    def on_peer_up(self, peer: str, via: str = "") -> None: ...

    def on_peer_down(self, peer: str, reason: str, refused: bool) -> None: ...

    def on_batch_end(self) -> None: ...

    def on_undeliverable(self, peer: str, header: bytes, error: ActorsError) -> None: ...

    def on_answers_lost(self, peer: str, reason: str) -> None: ...

    def on_peer_forgotten(self, peer: str) -> None: ...

    def on_peer_congested(self, peer: str, congested: bool) -> None: ...

    def on_peer_connecting(self, peer: str, reason: str) -> None: ...

    def on_tick(self, now: float) -> None: ...


class Router(Protocol):
    """Routes through peers (``actors.io.relay.Relay``): told of links up and down, it
    handles the routed kinds."""

    def peer_up(self, peer: str) -> None: ...

    def peer_down(self, peer: str, reason: str) -> None: ...

    def on_routed(self, peer: str, header: Header, payload: list[zmq.Frame]) -> None: ...

    def on_announced(self, peer: str, header: Header, payload: list[zmq.Frame]) -> None: ...


class Wire(Protocol):
    """The sends the lifecycle needs from the I/O thread, which owns the sockets."""

    def send_hello(self, peer: _Peer) -> None: ...

    def refuse(self, routing_id: bytes, code: str, text: str) -> None: ...

    def router_send(self, routing_id: bytes, frames: Sequence[Any]) -> None: ...

    def try_send(self, peer: _Peer, frames: Sequence[Any]) -> bool: ...

    def released(self, peer: _Peer) -> None: ...

    def greeted(self, fd: int, peer: _Peer) -> None: ...
