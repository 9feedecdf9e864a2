"""Connections that must say hello in time, or be dropped.

A ROUTER cannot close one of its connections, and a peer that finished the ZeroMQ
handshake but never says hello would hold a connection (and a file descriptor) for
as long as it answers heartbeats. The router's monitor tells us each accepted
connection's file descriptor; one still silent after ``hello_timeout`` is shut down
under ZeroMQ, which then drops it as if the peer had hung up.

The accept event (on the monitor socket) and the hello (on the ROUTER) race: the I/O
thread may read the hello first. A hello whose connection was not yet known is kept,
with the connection's address, until its accept event arrives and is matched to it;
without that, a greeted connection was shut down ``hello_timeout`` after it opened,
aborting whatever it carried.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from actors.io.fds import peer_address, shut_down
from actors.ratelog import LogLimit

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Accepted:
    at: float
    peer_address: object


class HelloDeadlines:
    """Accepted connections not yet greeted, by file descriptor (I/O thread only)."""

    def __init__(self, hello_timeout: float) -> None:
        self._timeout = hello_timeout
        self._waiting: dict[int, _Accepted] = {}
        self._greeted_early: dict[int, _Accepted] = {}  # hellos read before their accept
        self._log = LogLimit(log)

    def accepted(self, fd: int, now: float) -> None:
        """A peer connected on ``fd``; its hello is due by ``now + hello_timeout``."""
        address = peer_address(fd)
        early = self._greeted_early.pop(fd, None)
        if early is not None and address is not None and early.peer_address == address:
            return  # this connection said hello already
        self._waiting[fd] = _Accepted(now, address)

    def greeted(self, fd: int, now: float) -> None:
        """The connection on ``fd`` said hello."""
        if self._waiting.pop(fd, None) is None:
            self._greeted_early[fd] = _Accepted(now, peer_address(fd))

    def closed(self, fd: int) -> None:
        """The connection on ``fd`` is gone (its number may be reused)."""
        self._waiting.pop(fd, None)

    def drop_overdue(self, now: float) -> None:
        """Shut down every connection silent past its deadline."""
        overdue = [fd for fd, entry in self._waiting.items() if now - entry.at > self._timeout]
        for fd in overdue:
            entry = self._waiting.pop(fd)
            if entry.peer_address is not None and shut_down(fd, entry.peer_address):
                self._log.warning("dropped a connection from %s: no hello within %g s",
                                  entry.peer_address, self._timeout)
        stale = [fd for fd, entry in self._greeted_early.items()
                 if now - entry.at > self._timeout]  # an accept event that never came
        for fd in stale:
            del self._greeted_early[fd]


