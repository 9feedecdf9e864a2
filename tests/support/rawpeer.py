"""A raw pyzmq DEALER playing a peer site by hand, for tests of what peers can send."""

from __future__ import annotations

import zmq

from actors import codec
from actors.codec import Kind


def raw_dealer(context: zmq.Context, endpoint: str, routing_id: bytes | None = None
               ) -> zmq.Socket:
    """A DEALER connected to ``endpoint`` that says nothing yet; reads time out after 5 s."""
    sock = context.socket(zmq.DEALER)
    if routing_id is not None:
        sock.setsockopt(zmq.ROUTING_ID, routing_id)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(endpoint)
    return sock


def greet(sock: zmq.Socket, name: str, incarnation: str) -> None:
    """Say hello as site ``name`` and check the site welcomes it."""
    sock.send(codec.encode(Kind.HELLO, body=[name, incarnation]))
    assert codec.decode(sock.recv()).kind is Kind.WELCOME
