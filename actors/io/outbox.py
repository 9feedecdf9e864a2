"""How threads other than the I/O thread hand messages to it.

ZeroMQ sockets must never be used from two threads, so a sending thread never sends
itself: it appends ``(peer, header, payload)`` to one queue that the I/O thread
empties each round of its poll loop. Only when the I/O thread sleeps in its poll
does a sender wake it, by writing a byte to a pipe the poll watches. A burst of
messages thus costs a deque append each and one wake-up, where an inproc socket per
sender cost a ZeroMQ send, a receive and a release of the GIL per message on each side
(measured: about half the CPU of a site sending small tells). A ``None`` in the
queue runs the calls other threads posted (``actors.io.calls``), in order with the
messages queued before it.

Two bounds keep the queue small when the I/O thread falls behind (busy with a flood
of connections, or holding back while backlogs drain): messages of ``SMALL`` bytes or
more count their bytes against :class:`InboxBudget` (a test once measured 1.2 GB of
1 MiB payloads queued without it), and smaller ones count against ``limit`` messages.
A sender past either waits.

Payload parts under ``COPY_BELOW`` bytes that are not ``bytes`` are copied as they
are handed over, as ZeroMQ copied them before: a caller may reuse a small buffer as
soon as ``tell`` returns. Larger ones travel without copying, as always: a buffer
must not change until ZeroMQ has sent it.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from actors.errors import SiteClosed
from actors.io.frames import COPY_BELOW, message_size

#: Messages this big or bigger (header and payload) are counted in the byte budget.
SMALL = 4096

#: What the queue holds: a message for a peer, or None (run the posted calls).
Item = tuple[str, bytes, Sequence[Any]] | None


class InboxBudget:
    """Bytes of large messages handed to the I/O thread and not yet taken by it, bounded.

    A message bigger than the whole budget still goes, alone. Both ends count a
    message by :func:`weight`, and the count never goes below zero, so the two sides
    cannot drift toward a sender that waits for ever.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._bytes = 0
        self._waiting = 0
        self._closed = False
        self._changed = threading.Condition(threading.Lock())

    def take(self, size: int) -> None:
        """Count ``size`` bytes in; wait while the queue holds too much.

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
        """The I/O thread took ``size`` bytes off the queue.

        Waiting senders are woken once the queue has drained to half the budget, not per
        message taken: a sender faster than the I/O thread then waits once per half a
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
    """The queue into the I/O thread, with its bounds and its wake-up pipe.

    Senders call :meth:`send` and :meth:`wake` from any thread; the I/O thread calls
    the rest.
    """

    def __init__(self, limit: int, budget: InboxBudget) -> None:
        self.budget = budget
        self.items: deque[Item] = deque()
        #: Set by the I/O thread just before it sleeps in its poll, cleared after.
        self.asleep = False
        self._limit = limit if limit > 0 else sys.maxsize  # 0: no bound, as ZeroMQ's hwm
        self._reader, self._writer = os.pipe()
        os.set_blocking(self._reader, False)
        os.set_blocking(self._writer, False)
        self._wake_lock = threading.Lock()  # no write to a closed (reused) descriptor
        self._room = threading.Condition(threading.Lock())
        self._waiting = 0
        self._closed = False

    # -- any thread -----------------------------------------------------------------

    def send(self, peer: str, header: bytes, payload: Sequence[Any]) -> None:
        """Hand one message for ``peer`` to the I/O thread; blocks only while the queue
        is over one of its bounds.

        Raises:
            SiteClosed: the site is stopping or stopped.
        """
        if self._closed:
            raise SiteClosed("the site is stopped")
        if payload:
            payload = _owned(payload)
        size = weight(header, payload)
        if size >= SMALL:
            self.budget.take(size)
        elif len(self.items) >= self._limit:
            self._wait_for_room()
        self.items.append((peer, header, payload))
        if self.asleep:
            self._wake()

    def wake(self) -> None:
        """Have the I/O thread run the calls posted to it (after what was queued before)."""
        if self._closed:
            raise SiteClosed("the site is stopped")
        self.items.append(None)
        self._wake()

    def _wake(self) -> None:
        self.asleep = False  # one byte per sleep is enough
        with self._wake_lock:
            if self._closed:
                return
            try:
                os.write(self._writer, b"\0")
            except BlockingIOError:  # the pipe is full: the I/O thread is woken anyway
                pass
            except BrokenPipeError:  # the I/O thread has ended: nothing to wake
                pass

    def _wait_for_room(self) -> None:
        with self._room:
            while len(self.items) >= self._limit and not self._closed:
                self._waiting += 1
                try:
                    self._room.wait(1.0)
                finally:
                    self._waiting -= 1
            if self._closed:
                raise SiteClosed("the site is stopped")

    # -- the I/O thread -----------------------------------------------------------------

    @property
    def fileno(self) -> int:
        """The descriptor the I/O thread polls: readable once a sender woke it."""
        return self._reader

    def sleep_timeout(self, timeout_ms: int) -> int:
        """How long the poll may sleep: not at all while messages wait. Marks the I/O
        thread asleep first, so a sender that queues from now on wakes it; lets go a
        sender that began to wait for room after the last message it took."""
        if self._waiting:
            with self._room:
                self._room.notify_all()
        self.asleep = True
        if self.items:
            self.asleep = False
            return 0
        return timeout_ms

    def woken(self) -> None:
        """Empty the wake-up pipe (one read: a byte per sleep, so rarely more than one)."""
        try:
            os.read(self._reader, 4096)
        except BlockingIOError:  # another wake-up's read took it
            pass

    def taken(self, size: int) -> None:
        """The I/O thread took a message of ``size`` (its :func:`weight`) off the queue."""
        if size >= SMALL:
            self.budget.give(size)
        elif self._waiting and len(self.items) <= self._limit // 2:
            with self._room:
                self._room.notify_all()

    def close_reader(self) -> None:
        """The I/O thread is done polling: close its end of the pipe (its thread closes
        it, so no descriptor number it may still poll is reused under it)."""
        if self._reader >= 0:
            os.close(self._reader)
            self._reader = -1

    def close(self) -> None:
        """Refuse senders from now on and release those waiting, with :class:`SiteClosed`."""
        with self._wake_lock:
            if self._closed:
                return
            self._closed = True
            os.close(self._writer)
        self.budget.close()
        with self._room:
            self._room.notify_all()


def weight(header: bytes, payload: Sequence[Any]) -> int:
    """The bytes a queued message holds, as both ends of the queue count them."""
    return len(header) + message_size(payload) if payload else len(header)


def _owned(payload: Sequence[Any]) -> Sequence[Any]:
    """The payload with its small parts that a caller could change copied (see module doc)."""
    if all(type(part) is bytes or len(part) >= COPY_BELOW for part in payload):
        return payload
    return [part if type(part) is bytes or len(part) >= COPY_BELOW else bytes(part)
            for part in payload]
