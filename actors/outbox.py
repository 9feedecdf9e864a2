"""How threads other than the I/O thread hand messages to it.

ZeroMQ sockets must never be used from two threads, so each sending thread gets its
own inproc PUSH socket (made on first use) connected to the I/O thread's PULL socket.
Frames cross with ``copy=False``: ZeroMQ moves the message, the bytes are not copied
(pyzmq copies frames under its ``copy_threshold`` anyway, where copying is cheaper).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import zmq

from actors.errors import SiteClosed
from actors.frames import send_parts


class Outbox:
    """Thread-local inproc sockets into the I/O thread; one per sending thread."""

    def __init__(self, context: zmq.Context, endpoint: str, hwm: int) -> None:
        self._context = context
        self._endpoint = endpoint
        self._hwm = hwm
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sockets: list[tuple[threading.Thread, zmq.Socket]] = []
        self._closed = False

    def send(self, frames: Sequence[Any]) -> None:
        """Hand one multipart message to the I/O thread; blocks only under backpressure.

        Raises:
            SiteClosed: the site is stopping or stopped.
        """
        sock = getattr(self._local, "socket", None)
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
