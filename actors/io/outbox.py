"""How threads other than the I/O thread hand messages to it.

ZeroMQ sockets must never be used from two threads, so each sending thread gets its
own inproc PUSH socket (made on first use) connected to the I/O thread's PULL socket.
Frames cross with ``copy=False``: ZeroMQ moves the message, the bytes are not copied
(pyzmq copies frames under its ``copy_threshold`` anyway, where copying is cheaper).

The inbox's own framing (both ends are this module's): a message for a peer is
``[count, peer, 0, header...]`` in its first part, ``count`` being one byte that says
how many payload parts follow, so the I/O thread reads exactly those without asking
ZeroMQ whether more follow (an enum-converting option read per part, in pyzmq). An
empty first part, alone, wakes the I/O thread to run posted calls.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import zmq

from actors.errors import SiteClosed
from actors.io.frames import recv_frames, send_parts


class _ThreadSocket(threading.local):
    """This thread's inproc socket (None until it first sends; a class default reads
    faster than a missing attribute's AttributeError)."""

    socket: zmq.Socket | None = None


def read_inbox(inbox: zmq.Socket, first: bytes) -> tuple[str, list[Any]] | None:
    """Complete a message whose first part ``first`` the I/O thread read from its inbox.

    Returns ``(peer, [header, *payload])``, or None for a wake-up.
    """
    if not first:
        return None
    split = first.index(b"\0", 1)
    frames = [first[split + 1:]]
    if first[0]:
        frames += recv_frames(inbox, first[0])
    return first[1:split].decode(), frames


class Outbox:
    """Thread-local inproc sockets into the I/O thread; one per sending thread."""

    def __init__(self, context: zmq.Context, endpoint: str, hwm: int) -> None:
        self._context = context
        self._endpoint = endpoint
        self._hwm = hwm
        self._local = _ThreadSocket()
        self._lock = threading.Lock()
        self._sockets: list[tuple[threading.Thread, zmq.Socket]] = []
        self._closed = False

    def send(self, peer: str, header: bytes, payload: Sequence[Any]) -> None:
        """Hand one message for ``peer`` to the I/O thread; blocks only under backpressure.

        Raises:
            SiteClosed: the site is stopping or stopped.
        """
        # One part for route and header: each extra part costs a send and a receive.
        first = bytes((len(payload),)) + peer.encode() + b"\0" + header
        self._send([first, *payload] if payload else (first,))

    def wake(self) -> None:
        """Wake the I/O thread to run the calls posted to it (after what this thread sent)."""
        self._send((b"",))

    def _send(self, frames: Sequence[Any]) -> None:
        sock = self._local.socket
        if sock is None:
            sock = self._open()
        try:
            send_parts(sock, frames, 0)
        except zmq.ZMQError as err:
            raise SiteClosed("the site is stopped") from err

    def _open(self) -> zmq.Socket:
        with self._lock:
            if self._closed:
                raise SiteClosed("the site is stopped")
            self._close_dead_threads()
            sock = self._context.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, self._hwm)
            sock.connect(self._endpoint)
            self._sockets.append((threading.current_thread(), sock))
        self._local.socket = sock
        return sock

    def _close_dead_threads(self) -> None:
        """Close sockets whose threads ended (actor threads come and go)."""
        alive = []
        for thread, sock in self._sockets:
            if thread.is_alive():
                alive.append((thread, sock))
            else:
                sock.close(linger=0)
        self._sockets = alive

    def close(self) -> None:
        """Close every thread's socket; called once the site's threads have stopped."""
        with self._lock:
            self._closed = True
            for _thread, sock in self._sockets:
                sock.close(linger=0)
            self._sockets = []
