"""Reading what peers sent: messages from the ROUTER and each DEALER, and their monitors' events.

The I/O thread (``actors.io.thread``) polls; a :class:`Reader` reads up to a batch of
messages from a socket that has some, bounds their frames, decodes their headers and
hands them to the link lifecycle (``actors.io.links``), which decides what they mean.
A connection's accept and disconnect events are handled before what it brought in the
same round, and a header is read as a Frame only where its connection must be known.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from actors import codec
from actors.codec import Header, Kind
from actors.errors import CodecError, VersionMismatch
from actors.io import handshake
from actors.io.frames import NOBLOCK, readable, recv, recv_message, recv_rest
from actors.io.handshake import REFUSE_VERSION
from actors.io.intake import Intake
from actors.io.links import LinkLifecycle
from actors.io.peers import Peers, _Peer
from actors.options import SiteOptions
from actors.ratelog import LogLimit

#: Messages read from one socket before the loop looks at the others.
BATCH = 256


class Reader:
    """Reads the site's sockets for the I/O thread (its thread only).

    Args:
        refuse: ``refuse(routing_id, code, text)``, sends REFUSE on the ROUTER.
    """

    def __init__(self, site_name: str, options: SiteOptions, peers: Peers, intake: Intake,
                 links: LinkLifecycle, log: LogLimit,
                 refuse: Callable[[bytes, str, str], None]) -> None:
        self._site_name = site_name
        self._options = options
        self._peers = peers
        self._intake = intake
        self._links = links
        self._log = log
        self._refuse = refuse
        self.router: zmq.Socket[bytes] | None = None  # set once bound
        self.router_monitor: zmq.Socket[bytes] | None = None

    def read_router(self) -> None:
        """Read up to a batch of messages from the ROUTER (peers that dialled us)."""
        assert self.router is not None
        for index in range(BATCH):
            if index == 1 and not readable(self.router):
                return
            try:
                frames = self._recv_from_router()
            except zmq.Again:
                return
            if len(frames) > 2 + self._options.max_payload_frames:
                self._log.warning("site %s: dropped a message of %d frames", self._site_name,
                                  len(frames))
                continue
            self._on_router_message(frames[0], frames[1], frames[2:])

    def _recv_from_router(self) -> list[Any]:
        """Receive one message; its header as a Frame only from a connection not yet known.

        A Frame tells the connection's file descriptor (SRCFD): needed from a peer not
        yet known, from a known one whose current connection is not (it reconnected),
        and from one that is down (is it back on its old connection, or redialling?);
        for everyone else bytes are cheaper. A routing id is always
        followed by a part: a peer cannot send an empty message.
        """
        router = self.router
        assert router is not None
        routing_id = recv(router, NOBLOCK)
        peer = self._peers.at(routing_id)
        as_bytes = peer is not None and peer.fd is not None and peer.up
        return recv_rest(router, [routing_id, recv(router, 0, as_bytes)], 2)

    def _on_router_message(self, routing_id: bytes, head: Any,
                           payload: list[zmq.Frame]) -> None:
        if isinstance(head, zmq.Frame) and self.router_monitor is not None:
            # A connection not yet known: its accept event, and the disconnect event of
            # an older connection on the same descriptor, were queued before this
            # message (ZeroMQ sends them first). Handle them first.
            self.read_monitor(self.router_monitor, None)
            fd = head.get(zmq.SRCFD)
            if isinstance(fd, int) and fd >= 0:
                self._intake.heard(fd, time.monotonic())
        try:
            header = codec.decode(head.buffer if isinstance(head, zmq.Frame) else head)
        except VersionMismatch as err:
            self._refuse(routing_id, REFUSE_VERSION, f"this site speaks protocol "
                        f"{codec.PROTOCOL_VERSION}; {err}")
            return
        except CodecError as err:
            peer = self._peers.at(routing_id)
            self._log.warning("site %s: bad message from %s: %s", self._site_name,
                              peer.name if peer is not None else "an unnamed peer", err)
            return
        self._links.on_router_message(routing_id, head, header, payload)

    def read_dealer(self, peer: _Peer) -> None:
        """Read up to a batch of messages from our DEALER to ``peer``."""
        assert peer.dealer is not None
        for index in range(BATCH):
            if index == 1 and not readable(peer.dealer):
                return
            try:
                frames = recv_message(peer.dealer, copied=1)
            except zmq.Again:
                return
            if len(frames) > 1 + self._options.max_payload_frames:
                self._log.warning("site %s: dropped a message of %d frames from %s",
                                  self._site_name, len(frames), peer.name)
                continue
            try:
                header = codec.decode(frames[0])
            except VersionMismatch as err:
                if err.kind != int(Kind.REFUSE):
                    self._log.warning("site %s: bad message from %s: %s", self._site_name,
                                      peer.name, err)
                    continue
                # A refusal from a site of another version (of our hello, likely for
                # that very reason): its reason still reaches the callers.
                _code, text = handshake.refusal(err.body)
                header = Header(Kind.REFUSE, "", peer.name, 0, [
                    REFUSE_VERSION, f"it speaks protocol {err.version!r}: {text}"[:2000]])
            except CodecError as err:
                self._log.warning("site %s: bad message from %s: %s", self._site_name,
                                  peer.name, err)
                continue
            self._links.on_dealer_message(peer, header, frames[1:])

    def read_monitor(self, sock: zmq.Socket[bytes], peer: _Peer | None) -> None:
        """Handle the events a monitor queued: of the ROUTER (``peer`` None) or of
        ``peer``'s DEALER."""
        while True:
            try:
                event = recv_monitor_message(sock, zmq.NOBLOCK)
            except zmq.Again:
                return
            kind, fd = event["event"], event["value"]
            if kind == zmq.EVENT_ACCEPTED:  # the router's
                self._intake.opened(fd)
            elif kind == zmq.EVENT_CONNECTED and peer is not None:  # a DEALER's
                peer.dealer_fd, peer.flight_limit = fd, peer.sent
                self._intake.opened(fd, peer)
            elif kind == zmq.EVENT_DISCONNECTED:
                self._intake.closed(fd)
                if peer is not None and peer.dealer_fd == fd:
                    peer.dealer_fd = None
            self._links.on_monitor_event(peer, kind, fd)
