"""Making and configuring a site's ZeroMQ sockets.

Only the I/O thread (``actors.io.thread``) calls these: it owns every socket they make.
Every peer-facing socket gets the same limits (message size, high-water marks) and
CURVE when the site is secure; liveness is the links' own pings, not ZeroMQ's.
"""

from __future__ import annotations

import uuid

import zmq

from actors import codec
from actors.options import SiteOptions


def configure(sock: zmq.Socket[bytes], options: SiteOptions, peer: str | None = None) -> None:
    """Set a new socket's options; ``peer`` names the site a DEALER connects to."""
    sock.setsockopt(zmq.LINGER, int(options.linger * 1000))
    sock.setsockopt(zmq.SNDHWM, options.hwm)
    sock.setsockopt(zmq.RCVHWM, options.hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, options.max_message_size + codec.MAX_HEADER_SIZE)
    # No ZMTP heartbeats (HEARTBEAT_IVL): libzmq 4.3 aborts the whole process on them
    # (assert !_io_error in stream_engine_base.cpp, zeromq/libzmq#4364 and #4767) when a
    # peer that stops reading gets its connection reset; the links' own pings
    # (actors.io.links) find a silent peer instead.
    if options.curve is not None:
        options.curve.configure(sock, server=sock.type == zmq.ROUTER, peer=peer)


def new_router(context: zmq.Context[zmq.Socket[bytes]], options: SiteOptions) -> zmq.Socket[bytes]:
    """The ROUTER peers connect to, not yet bound."""
    router = context.socket(zmq.ROUTER)
    configure(router, options)
    # Never drop a message silently for an unknown or full peer: raise instead.
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    # A peer reconnecting under its routing id takes over its stale connection.
    router.setsockopt(zmq.ROUTER_HANDOVER, 1)
    return router


def new_dealer(context: zmq.Context[zmq.Socket[bytes]], options: SiteOptions, site_name: str,
               peer: str) -> zmq.Socket[bytes]:
    """A DEALER for the link to ``peer``, not yet connected, with a fresh routing id."""
    dealer = context.socket(zmq.DEALER)
    try:
        configure(dealer, options, peer=peer)
    except Exception:  # e.g. no key for this peer: an unregistered socket would leak
        dealer.close(linger=0)
        raise
    dealer.setsockopt(zmq.ROUTING_ID, f"{site_name}:{uuid.uuid4().hex}".encode())
    return dealer
