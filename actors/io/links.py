"""What each message and socket event means for a peer link: up, down, refused.

Lifecycle of a peer link::

    (dealer) connect -> HELLO queued -> WELCOME received -> up
    (router) HELLO received -> WELCOME sent                -> up
    up -> disconnect event | BYE | silent past heartbeat_timeout -> down
    down -> any message, or a new HELLO/WELCOME            -> up again
    down, not dialled, for FORGET_AFTER (or its place needed) -> forgotten
    REFUSE received (version, name, key)                  -> refused (final)
    REFUSE "busy" (our name is still connected there)      -> refused, hello again each beat
    (dealer) the ZeroMQ handshake fails: the peer's key does not trust ours, or one side
    speaks CURVE and the other not                         -> refused (final)
    (dealer) each connect refused, nothing answers         -> still connecting, saying so

One connection speaks for one site: a HELLO under another name on a connection that
said hello already is refused and the connection cut (messages still arriving on it
are dropped until it is gone), so a peer cannot fill the table, or claim the limits
of many sites, from one connection. The table holds ``max_peers`` names: a new name
takes the place of the peer down longest that we do not dial, or is refused.

The I/O thread (``actors.io.thread``) reads and decodes; :class:`LinkLifecycle` decides
what a message or event does to its link, tells the site (the link handler) about
messages and peers coming and going, and sends what the handshake and heartbeats
need through the I/O thread (``actors.io.ports.Wire``). Runs on the I/O thread only.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import zmq

from actors import codec
from actors.io import handshake
from actors.codec import APP_KINDS, Header, Kind
from actors.errors import CodecError
from actors.io.fds import peer_address, shut_down
from actors.io.greeting import HelloDeadlines
from actors.io.handshake import (REFUSE_AUTH, REFUSE_BUSY, REFUSE_HELLO, REFUSE_NAME,
                                 REFUSE_SECURITY)
from actors.options import SiteOptions
from actors.io.peers import Peers, _Peer
from actors.io.ports import LinkHandler, Router, Wire
from actors.ratelog import LogLimit

log = logging.getLogger(__name__)

#: Seconds a peer that is down, and that we do not dial, stays in the table.
FORGET_AFTER = 60.0
#: Connections cut whose disconnect event has not come yet (their messages are dropped).
_MAX_CUT = 1024

# Module constants: reading an enum member off its class costs more, once per message.
_HELLO, _BYE, _REFUSE, _WELCOME = Kind.HELLO, Kind.BYE, Kind.REFUSE, Kind.WELCOME
_ROUTED, _ROUTES, _BUNDLE = Kind.ROUTED, Kind.ROUTES, Kind.BUNDLE
_MECHANISM_MISMATCH = zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH


class LinkLifecycle:
    """Moves each peer link through its states; see the module docstring."""

    def __init__(self, site_name: str, incarnation: str, options: SiteOptions, peers: Peers,
                 handler: LinkHandler, wire: Wire) -> None:
        self.site_name = site_name
        self.incarnation = incarnation
        self._options = options
        self._peers = peers
        self._handler = handler
        self._wire = wire
        self.router: Router | None = None  # set once the relay exists
        self._greeting = HelloDeadlines(options.hello_timeout)
        self._cut: dict[bytes, int | None] = {}  # routing id -> descriptor, of cut connections
        self._to_shut: list[tuple[int, object]] = []  # (descriptor, peer address)
        self.log = LogLimit(log)

    # -- messages ----------------------------------------------------------------

    def on_router_message(self, routing_id: bytes, head: Any, header: Header,
                          payload: list[zmq.Frame]) -> None:
        """A decoded message on a connection a peer opened to us."""
        peer = self._peers.at(routing_id)
        if peer is None and routing_id in self._cut and self._still_cut(routing_id, head):
            return
        if header.kind is _HELLO:
            self._on_hello(routing_id, head, header, peer)
            return
        if peer is None:
            self._wire.refuse(routing_id, REFUSE_HELLO, "say hello first")
            return
        peer.last_heard = peer.router_heard = time.monotonic()
        if isinstance(head, zmq.Frame) and not self._on_greeted_connection(peer, head):
            # Queued by the peer's DEALER before it redialled, sent ahead of its hello:
            # not from a greeted connection, so not delivered (what it answered was
            # failed when the old connection went), and only the hello brings the peer
            # back up. Brought up by these, the hello that followed failed the asks
            # sent in between as lost.
            self.log.info("site %s: %s from %s on a connection that has not said hello yet "
                          "dropped", self.site_name, header.kind.name, peer.name)
            return
        if not peer.up:
            self.heard(peer)
        self._dispatch(peer, header, payload)

    def _still_cut(self, routing_id: bytes, head: Any) -> bool:
        """Whether a message with a routing id we cut came on the connection we cut."""
        fd, cut_fd = _connection_fd(head), self._cut[routing_id]
        if fd is not None and cut_fd is not None and fd != cut_fd:
            del self._cut[routing_id]  # a new connection under the same routing id
            return False
        return True

    def _on_greeted_connection(self, peer: _Peer, head: zmq.Frame) -> bool:
        """Whether a message (read with its connection, as the peer is down or its
        connection unknown) came on the connection the peer said hello on.

        No once that connection has closed, or when the message came on another one;
        yes when we cannot tell. A connection whose hello came before we could learn
        its descriptor is learned now.
        """
        fd = _connection_fd(head)
        on_another = fd is not None and peer.fd is not None and fd != peer.fd
        if peer.greeted_connection_closed or on_another:
            return False
        if peer.fd is None and fd is not None:
            self._peers.set_fd(peer, fd)
            self._greeting.greeted(fd, time.monotonic())
            self._wire.greeted(fd, peer)
        return True

    def _on_hello(self, routing_id: bytes, head: Any, header: Header,
                  greeted_as: _Peer | None) -> None:
        identity = handshake.hello_identity(header.body)
        if identity is None:
            self._wire.refuse(routing_id, REFUSE_NAME, "malformed hello")
            return
        name, incarnation = identity
        again = greeted_as is not None and _same_connection(greeted_as, head)
        if again and greeted_as is not None and name != greeted_as.name:
            self.cut(routing_id, greeted_as, head, REFUSE_NAME, f"said hello as {name!r} on a "
                     f"connection that said hello as {greeted_as.name!r}: one connection, one site")
            return
        known = self._peers.get(name)
        if known is None and not self._make_room():
            # "busy": an honest site says hello again later, when a place may be free.
            self.cut(routing_id, None, head, REFUSE_BUSY, f"this site knows "
                     f"{len(self._peers)} peers, its most; none can make room for {name!r}")
            return
        # A hello again on the connection (routing id) that said hello as this name, its
        # header read as bytes: its key was checked then, and bytes tell no key.
        authenticated = again and not isinstance(head, zmq.Frame)
        code, refusal = handshake.hello_refusal(self.site_name, self._options, known, name,
                                                incarnation, routing_id,
                                                None if authenticated else head)
        fd = _connection_fd(head)
        if refusal:
            self.log.warning("site %s: refused hello from %r: %s", self.site_name, name,
                             refusal)
            self._wire.refuse(routing_id, code, refusal)
            if code == REFUSE_BUSY and fd is not None:
                # It said hello and will say it again here once the old one is gone:
                # not a silent connection to cut.
                self._greeting.greeted(fd, time.monotonic())
            return
        if (known is not None and known.up and known.routing_id is not None
                and not known.greeted_connection_closed):
            # A hello from a peer that is up comes on a new connection: the old one is
            # dead, even if no event said so (yet, or at all: a redial that took over a
            # half-open connection). What was in flight on it is lost: fail it. (When
            # its close was seen, that failed it; what was sent since is not lost. A
            # peer we dial that says hello here for the first time lost nothing: it
            # was up through our link only, and answers came over none of its own.)
            if known.dealer is None:
                self.peer_down(known, "reconnected")
            else:  # we dial it too: only its answers came over the old connection
                self._handler.on_answers_lost(known.name, "reconnected")
        peer = self._peers.greeted(name, routing_id, incarnation, fd)
        if fd is not None:
            self._greeting.greeted(fd, time.monotonic())
            self._wire.greeted(fd, peer)
        # Up before the welcome goes: once the peer's wait_for returns, this site lists
        # it among its peers and can send to it (it could not, for an instant, before).
        self.heard(peer)
        self._wire.router_send(routing_id, [handshake.welcome(self.site_name, self.incarnation)])

    def _make_room(self) -> bool:
        """Whether the table has room for one more name, forgetting the peer down
        longest (that we do not dial) if it must."""
        if len(self._peers) < self._options.max_peers:
            return True
        idle = self._peers.forgettable(time.monotonic(), 0.0)
        if not idle:
            return False
        self.forget(idle[0])
        return True

    def forget(self, peer: _Peer) -> None:
        """Drop ``peer`` from the table and tell the site."""
        self._peers.forget(peer)
        self._wire.released(peer)
        self._handler.on_peer_forgotten(peer.name)

    def cut(self, routing_id: bytes, peer: _Peer | None, head: Any, code: str,
            reason: str) -> None:
        """Refuse the connection ``routing_id`` (REFUSE ``code``) and end it: what it still
        sends is dropped, and the peer it said hello as (if any) is down."""
        self.log.warning("site %s: cut a connection%s: %s", self.site_name,
                         f" of {peer.name}" if peer is not None else "", reason)
        self._wire.refuse(routing_id, code, reason)
        fd = _connection_fd(head)
        if peer is not None:
            fd = peer.fd if fd is None else fd
            self._peers.unroute(peer)
            self.peer_down(peer, f"cut: {reason}")
        if len(self._cut) >= _MAX_CUT:
            del self._cut[next(iter(self._cut))]
        self._cut[routing_id] = fd
        address = peer_address(fd) if fd is not None else None
        if fd is not None and address is not None and len(self._to_shut) < _MAX_CUT:
            # At the next beat, so that the refusal has gone out; by then the number
            # may lead elsewhere: the peer's address tells.
            self._to_shut.append((fd, address))

    def on_dealer_message(self, peer: _Peer, header: Header, payload: list[zmq.Frame]) -> None:
        """A decoded message on the connection we opened to ``peer``."""
        if header.kind is _REFUSE:
            self._on_refused(peer, header.body)
        elif header.kind is _WELCOME:
            wrong = handshake.welcome_refusal(peer.name, header.body)
            if wrong:
                self._on_refused(peer, [REFUSE_NAME, wrong])
                return
            peer.refused, peer.retry_hello_at = None, 0.0
            peer.dealer_heard = time.monotonic()
            self.heard(peer)
            # A first message at once: it tells the other side which connection this
            # is (its descriptor), if our hello could not.
            self._wire.try_send(peer, [codec.encode(Kind.PING, sender=self.site_name)])
        elif peer.up or peer.refused is None:
            peer.dealer_heard = time.monotonic()
            self.heard(peer)
            self._dispatch(peer, header, payload)

    def _on_refused(self, peer: _Peer, body: Any) -> None:
        code, text = handshake.refusal(body)
        if code == REFUSE_HELLO and peer.dealer is not None:
            self._wire.send_hello(peer)
            return
        if code == REFUSE_BUSY and peer.dealer is not None:
            # A site restarted under its name: the peer may not have noticed the old
            # connection die yet. Refused for now (callers see why); hello again later.
            peer.retry_hello_at = time.monotonic() + self._options.heartbeat_interval
        self.log.error("site %s: %s refused the link: %s", self.site_name, peer.name, text)
        peer.refused = str(text)
        self.peer_down(peer, str(text), refused=True)

    def _dispatch(self, peer: _Peer, header: Header, payload: list[zmq.Frame]) -> None:
        kind = header.kind
        if kind in APP_KINDS:
            sender = header.sender
            if not sender.startswith(peer.sender_prefix) and sender != peer.name:
                self.log.warning("site %s: %s sent a message claiming to be from %r; dropped",
                                 self.site_name, peer.name, header.sender)
                return
            self._handler.on_message(peer.name, header, payload)
        elif kind is _BUNDLE and not payload:
            self._unbundle(peer, header)
        elif kind is _ROUTED and self.router is not None:
            self.router.on_routed(peer.name, header, payload)
        elif kind is _ROUTES and self.router is not None:
            self.router.on_announced(peer.name, header, payload)
        elif kind is _BYE:
            self.peer_down(peer, f"peer stopped ({header.body})")

    def _unbundle(self, peer: _Peer, bundle: Header) -> None:
        """Dispatch each message of a BUNDLE as if it had come alone (a bad bundle is
        dropped whole: nothing of it was delivered)."""
        try:
            headers = codec.unbundle(bundle.body)
        except CodecError as err:
            self.log.warning("site %s: bad bundle from %s dropped: %s", self.site_name,
                             peer.name, err)
            return
        for header in headers:
            self._dispatch(peer, header, [])

    # -- socket events -----------------------------------------------------------

    def on_monitor_event(self, peer: _Peer | None, event: int, value: int) -> None:
        """A monitor event of ``peer``'s DEALER, or of the ROUTER when ``peer`` is None."""
        if peer is None:  # the router's monitor: value is the connection's fd
            if event == zmq.EVENT_ACCEPTED:
                self._greeting.accepted(value, time.monotonic())
                return
            self._greeting.closed(value)
            if value in self._cut.values():
                self._cut = {rid: fd for rid, fd in self._cut.items() if fd != value}
            router_peer = self._peers.connection_closed(value)
            if router_peer is not None and router_peer.dealer is None:
                self.peer_down(router_peer, "connection lost")
            elif router_peer is not None:
                # We dial it too, so the link stays up, but its answers to our asks
                # came over this connection (a site answers over the link it dialled).
                self._handler.on_answers_lost(router_peer.name, "connection lost")
        elif event == zmq.EVENT_CONNECTED:
            if peer.connected_once:
                self._wire.send_hello(peer)
            peer.connected_once = True
            if not peer.up:
                self._handler.on_peer_connecting(peer.name, "")
        elif event == zmq.EVENT_DISCONNECTED:
            self.peer_down(peer, "connection lost")
        elif event == zmq.EVENT_CONNECT_RETRIED and not peer.up and peer.dealer_fd is None:
            self._handler.on_peer_connecting(peer.name, f"nothing accepts connections at "
                                             f"{peer.endpoint} (retrying)")
        elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            self._on_refused(peer, [REFUSE_AUTH, "the peer does not trust this site's key"])
        elif event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == _MECHANISM_MISMATCH:
            self._on_refused(peer, [REFUSE_SECURITY, _mismatch(self._options)])

    # -- liveness ----------------------------------------------------------------

    def heard(self, peer: _Peer) -> None:
        """``peer`` said something: it is up."""
        peer.last_heard = time.monotonic()
        if not peer.up:
            peer.up = True
            self._handler.on_peer_up(peer.name)
            if self.router is not None:
                self.router.peer_up(peer.name)

    def peer_down(self, peer: _Peer, reason: str, refused: bool = False) -> None:
        """``peer`` is gone (or refused us): drop its backlog and tell the site."""
        dropped = self._peers.drop_pending(peer)
        self._wire.released(peer)
        if dropped:
            self.log.warning("site %s: %d messages to %s dropped: %s", self.site_name,
                             dropped, peer.name, reason)
        if peer.up or refused:
            peer.up = False
            peer.down_at = time.monotonic()
            self._handler.on_peer_down(peer.name, reason, refused)
            if self.router is not None:
                self.router.peer_down(peer.name, reason)

    def beat(self, now: float) -> None:
        """Drop silent connections and peers, retry refused hellos, ping idle links,
        forget peers long gone."""
        self._greeting.drop_overdue(now)
        self.log.flush(now)
        to_shut, self._to_shut = self._to_shut, []
        for fd, address in to_shut:
            shut_down(fd, address)
        for peer in self._peers.forgettable(now, FORGET_AFTER):
            self.forget(peer)
        ping = None
        for peer in list(self._peers):
            if peer.retry_hello_at and now >= peer.retry_hello_at and peer.refused is not None:
                peer.retry_hello_at = now + self._options.heartbeat_interval
                self._wire.send_hello(peer)
            if not peer.up:
                continue
            if now - peer.last_heard > self._options.heartbeat_timeout:
                self.peer_down(peer, f"silent for over {self._options.heartbeat_timeout:g} s")
            elif now - peer.last_sent >= self._options.heartbeat_interval and not peer.pending:
                ping = ping or codec.encode(Kind.PING, sender=self.site_name)
                self._wire.try_send(peer, [ping])


def _mismatch(options: SiteOptions) -> str:
    """Why a link failed whose two ends disagree on security (ZMTP's mechanism)."""
    if options.curve is None:
        return ("it requires keys: its links are encrypted with CURVE, and this site has "
                "no keys")
    return "it runs without keys (plain links), and this site requires CURVE"


def _same_connection(peer: _Peer, head: Any) -> bool:
    """Whether a message came on the connection ``peer`` said hello on (its routing id
    maps to ``peer``): yes when its header came as bytes (read so because the
    connection is known), or its descriptor is that connection's or not known."""
    fd = _connection_fd(head)
    return fd is None or peer.fd is None or fd == peer.fd


def _connection_fd(head: Any) -> int | None:
    """The descriptor of the connection a header came on; None when it came as bytes
    (a connection already known) or ZeroMQ cannot tell."""
    if not isinstance(head, zmq.Frame):
        return None
    fd = head.get(zmq.SRCFD)
    return fd if isinstance(fd, int) and fd >= 0 else None
