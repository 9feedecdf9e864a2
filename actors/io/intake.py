"""Bytes a connection sent that no message read from it accounts for yet, and a cut past a bound.

ZeroMQ (libzmq 4.3.5) hands a multipart message over only once its last frame has
arrived: the frames of an incomplete message wait in the connection's pipe, never
flushed to the reader (``ypipe_t::write`` moves its flush mark only at a message's
last frame). ``ZMQ_MAXMSGSIZE`` bounds each frame as it is decoded
(``v2_decoder_t::size_ready``), not the message, and the high-water mark counts
whole messages, so nothing in ZeroMQ bounds how many frames one message has: a peer
could make a site hold gigabytes before the site could look at a single frame.

The kernel counts the bytes each TCP connection received (``actors.io.fds``). Once
the I/O thread has read a message from a connection, everything that connection had
received is accounted for; what it receives beyond that, until the next message is
read from it, is a message being assembled. :class:`Intake` checks that figure every
few milliseconds and cuts a connection past its bound: ``hello_bytes`` until the
connection has said hello (a hello is one small frame), the largest message the
site accepts after (``max_message_size`` and a header, with room for framing and the
next message's first bytes), and, for the whole site, the largest of them once all
connections together hold more than ``max_arriving_bytes``. ZeroMQ then drops the
connection and frees what it held.

Polling bounds it up to what arrives between two checks (a few MiB at loopback
speed); ipc:// connections have no such counter and are not checked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from actors.codec import MAX_HEADER_SIZE
from actors.io.fds import TcpCounters, peer_address, shut_down
from actors.io.peers import _Peer
from actors.options import SiteOptions
from actors.ratelog import LogLimit

log = logging.getLogger(__name__)

#: What a connection may send before it has said hello: a hello is one small frame.
HELLO_BYTES = 4 * MAX_HEADER_SIZE
#: Room over one message's bytes, after hello: frame headers, what the kernel holds,
#: and the first bytes of the next message, received before the check saw the last.
SLACK_BYTES = 8 << 20
#: Seconds between checks; shorter once a connection holds an eighth of its bound.
INTERVAL = 0.02
HOT_INTERVAL = 0.005


@dataclass(slots=True, eq=False)
class _Connection:
    """One TCP connection's figures (the peer, once it said hello on it or we dialled it)."""

    address: object
    mark: int  # the kernel's bytes received when a message was last read from it
    peer: _Peer | None = None
    dialled: bool = False  # our DEALER's connection to ``peer``; else one a peer opened
    heard: float = 0.0  # when a message from it was last read, while not linked to a peer
    stamp: float = 0.0  # the progress stamp at the last check
    held: int = 0

    def named(self, fd: int) -> _Peer | None:
        """The peer this is the current connection of, if any (or may be: a peer whose
        current connection is not known, as after a hello that came as bytes)."""
        peer = self.peer
        if peer is None:
            return None
        current = peer.dealer_fd if self.dialled else peer.fd
        return peer if current == fd or current is None else None


class Intake:
    """Every TCP connection of a site, checked for a message held unread (I/O thread only)."""

    def __init__(self, site_name: str, options: SiteOptions, counters: TcpCounters) -> None:
        self._site_name = site_name
        self._counters = counters
        self._limit = options.max_message_size + MAX_HEADER_SIZE + SLACK_BYTES
        self._site_limit = options.max_arriving_bytes
        self._connections: dict[int, _Connection] = {}
        self._next_check = 0.0
        self.hot = False  # a connection holds an eighth of its bound: check often
        self._log = LogLimit(log)

    def opened(self, fd: int, peer: _Peer | None = None) -> None:
        """A connection on ``fd``: accepted (no peer yet), or ours to ``peer`` (dialled)."""
        counts = self._counters.read(fd)
        if counts is None:  # not TCP: nothing to compare with
            return
        self._connections[fd] = _Connection(peer_address(fd), counts[0], peer,
                                            dialled=peer is not None)

    def greeted(self, fd: int, peer: _Peer) -> None:
        """The connection on ``fd`` said hello as ``peer``."""
        connection = self._connections.get(fd)
        if connection is not None and not connection.dialled:
            connection.peer = peer

    def heard(self, fd: int, now: float) -> None:
        """A message from the connection on ``fd`` was read (one whose peer is not known)."""
        connection = self._connections.get(fd)
        if connection is not None:
            connection.heard = now

    def closed(self, fd: int) -> None:
        """The connection on ``fd`` is gone."""
        self._connections.pop(fd, None)

    def check(self, now: float) -> None:
        """Cut every connection holding more of one message than its bound allows."""
        if now < self._next_check or not self._connections:
            return
        hot, total, largest = False, 0, None
        for fd, connection in list(self._connections.items()):
            counts = self._counters.read(fd)
            if counts is None:
                del self._connections[fd]
                continue
            peer = connection.named(fd)
            limit = self._limit if peer is not None else HELLO_BYTES
            stamp = connection.heard
            if peer is not None:
                stamp = max(stamp, peer.dealer_heard if connection.dialled else peer.router_heard)
            if stamp != connection.stamp:  # a message was read from it: all accounted for
                connection.stamp, connection.mark, connection.held = stamp, counts[0], 0
                continue
            connection.held = held = counts[0] - connection.mark
            if held > limit:
                self._cut(fd, connection, f"{held} bytes of one message, over {limit}")
                continue
            hot = hot or held > limit // 8
            total += held
            if largest is None or held > largest[1].held:
                largest = (fd, connection)
        if total > self._site_limit and largest is not None:
            self._cut(largest[0], largest[1], f"{largest[1].held} bytes of one message while "
                      f"all connections held {total}, over {self._site_limit}")
        self.hot = hot
        self._next_check = now + (HOT_INTERVAL if hot else INTERVAL)

    def _cut(self, fd: int, connection: _Connection, why: str) -> None:
        del self._connections[fd]
        if shut_down(fd, connection.address):
            peer = connection.named(fd)
            self._log.warning("site %s: cut the connection %s %s: %s", self._site_name,
                              "to" if connection.dialled else "from",
                              peer.name if peer is not None else connection.address, why)
