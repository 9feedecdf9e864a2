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

The inbox's high-water mark counts messages, so on its own it would let senders queue
thousands of 1 MiB payloads in the inproc pipe whenever the I/O thread falls behind
(busy with a flood of connections, or holding its inbox while backlogs drain): a
test measured 1.2 GB. :class:`InboxBudget` bounds the payload bytes in the pipe:
senders take before they hand a message over, the I/O thread gives back as it reads.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import zmq

from actors.errors import SiteClosed
from actors.io.frames import message_size, recv_frames, send_parts


class _ThreadSocket(threading.local):
    """This thread's inproc socket (None until it first sends; a class default reads
    faster than a missing attribute's AttributeError)."""

    socket: zmq.Socket[bytes] | None = None


def read_inbox(inbox: zmq.Socket[bytes], first: bytes) -> tuple[str, list[Any]] | None:
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


class InboxBudget:
    """Payload bytes handed to the I/O thread and not yet read by it, bounded.

    A message bigger than the whole budget still goes, alone. The I/O thread gives
    back what it measured on the frames it read, which is never less than what the
    sender took (``len`` of a memoryview of wide items undercounts its bytes), and the
    count never goes below zero, so the two sides can drift only toward letting more
    through, never toward a sender that waits for ever.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._bytes = 0
        self._waiting = 0
        self._closed = False
        self._changed = threading.Condition(threading.Lock())

    def take(self, size: int) -> None:
        """Count ``size`` payload bytes in; wait while the pipe holds too much.

        Raises:
            SiteClosed: the site stopped while this sender waited.
        """
        with self._changed:
            while self._bytes and self._bytes + size > self._limit and not self._closed:
                self._waiting += 1
                try:
                    self._changed.wait(1.0)
                finally:
                    self._waiting -= 1
            if self._closed:
                raise SiteClosed("the site is stopped")
            self._bytes += size

    def give(self, size: int) -> None:
        """The I/O thread read ``size`` payload bytes from the pipe.

        Waiting senders are woken once the pipe has drained to half the budget, not per
        message read: a sender faster than the I/O thread then waits once per half a
        budget, not once per message (a thread wake-up each on two cores).
        """
        with self._changed:
            self._bytes = max(0, self._bytes - size)
            if self._waiting and self._bytes <= self._limit // 2:
                self._changed.notify_all()

    def close(self) -> None:
        """Release every waiting sender with :class:`SiteClosed`."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()


class Outbox:
    """Thread-local inproc sockets into the I/O thread; one per sending thread."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int,
                 budget: InboxBudget) -> None:
        self.budget = budget
        self._context = context
        self._endpoint = endpoint
        self._hwm = hwm
        self._local = _ThreadSocket()
        self._lock = threading.Lock()
        self._sockets: list[tuple[threading.Thread, zmq.Socket[bytes]]] = []
        self._closed = False

    def send(self, peer: str, header: bytes, payload: Sequence[Any]) -> None:
        """Hand one message for ``peer`` to the I/O thread; blocks only under backpressure
        (the pipe's payload budget or its high-water mark).

        Raises:
            SiteClosed: the site is stopping or stopped.
        """
        # One part for route and header: each extra part costs a send and a receive.
        first = bytes((len(payload),)) + peer.encode() + b"\0" + header
        if not payload:
            self._send((first,))
            return
        size = message_size(payload)
        self.budget.take(size)
        try:
            self._send([first, *payload])
        except SiteClosed:
            self.budget.give(size)
            raise

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

    def _open(self) -> zmq.Socket[bytes]:
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
            self.budget.close()
            for _thread, sock in self._sockets:
                sock.close(linger=0)
            self._sockets = []
