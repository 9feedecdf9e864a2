"""A raw pyzmq DEALER playing a peer site by hand, for tests of what peers can send."""

from __future__ import annotations

import weakref
from collections import deque

import zmq

from actors import codec
from actors.codec import Kind


def raw_dealer(context: zmq.Context, endpoint: str, routing_id: bytes | None = None,
               curve: tuple[bytes, bytes, bytes] | None = None) -> zmq.Socket:
    """A DEALER connected to ``endpoint`` that says nothing yet; reads time out after 5 s.

    ``curve``: (our public key, our secret key, the server's public key), z85.
    """
    sock = context.socket(zmq.DEALER)
    if routing_id is not None:
        sock.setsockopt(zmq.ROUTING_ID, routing_id)
    if curve is not None:
        sock.setsockopt(zmq.CURVE_PUBLICKEY, curve[0])
        sock.setsockopt(zmq.CURVE_SECRETKEY, curve[1])
        sock.setsockopt(zmq.CURVE_SERVERKEY, curve[2])
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(endpoint)
    return sock


def greet(sock: zmq.Socket, name: str, incarnation: str) -> None:
    """Say hello as site ``name`` and check the site welcomes it."""
    sock.send(codec.encode(Kind.HELLO, body=[name, incarnation]))
    assert codec.decode(sock.recv()).kind is Kind.WELCOME


def hello(name: str, incarnation: str = "raw") -> bytes:
    """The HELLO a site named ``name`` says."""
    return codec.encode(Kind.HELLO, body=[name, incarnation])


#: Messages read from a socket in a bundle and not yet returned, by socket.
_unread: weakref.WeakKeyDictionary[zmq.Socket, deque[codec.Header]] = \
    weakref.WeakKeyDictionary()


def next_of(sock: zmq.Socket, *kinds: Kind) -> codec.Header:
    """The next message of one of ``kinds`` (skipping the site's pings), a bundle's
    messages one by one, as a site reads them; the socket's RCVTIMEO bounds each wait."""
    unread = _unread.setdefault(sock, deque())
    while True:
        if not unread:
            header = codec.decode(sock.recv_multipart()[0])
            unread += codec.unbundle(header.body) if header.kind is Kind.BUNDLE else [header]
        header = unread.popleft()
        if header.kind in kinds:
            return header
