"""Calls other threads queue for the I/O thread, each with a future of its result.

Only the I/O thread may touch a site's sockets, so a thread that needs something
done with them (connect a peer, stop, list peers) queues a function here, wakes the
I/O thread, and waits on the future.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class Calls:
    """A queue of functions to run on the I/O thread, in the order they came."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = \
            queue.SimpleQueue()

    def post(self, call: Callable[[], Any]) -> Future[Any]:
        """Queue ``call`` (from any thread); the future gets its result or exception."""
        future: Future[Any] = Future()
        self._queue.put((call, future))
        return future

    def run_all(self) -> None:
        """Run every queued call (on the I/O thread)."""
        while True:
            try:
                call, future = self._queue.get_nowait()
            except queue.Empty:
                return
            try:
                future.set_result(call())
            except Exception as err:  # the caller raises it where it waits
                future.set_exception(err)
