"""The site's I/O thread: the one owner of every socket of a site.

It binds the ROUTER that peers connect to, owns one DEALER per peer we connect to,
and sends what other threads queued for it (``actors.io.outbox``), woken through a
pipe when it sleeps. Nothing else in the process touches these sockets.

Inbound messages are read and decoded here; what they mean for their peer link
(hello, welcome, refusal, up and down, heartbeats) is ``actors.io.links``'s, which
hands messages for actors to a :class:`LinkHandler` (the site's
``actors.dispatch.Dispatcher``); the handler runs on this thread and must not block.

The poll loop and the sockets live here; reading and decoding in ``actors.io.reader``,
sending and backlogs in
``actors.io.outbound``, the rules of the handshake in ``actors.io.handshake``, the
peer table and backlog in ``actors.io.peers``, the bound on messages still arriving
in ``actors.io.intake``, socket options in ``actors.io.sockets``, calls from other
threads in ``actors.io.calls``; routes to sites we are not linked to, and relaying for
our peers, in ``actors.io.relay``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Protocol

import zmq

from actors import codec
from actors.io import handshake, sockets
from actors.io.bundler import Bundler
from actors.io.calls import Calls
from actors.codec import Kind
from actors.io.fds import TcpCounters, shut_down
from actors.io.intake import Intake
from actors.io.links import LinkLifecycle
from actors.io.ports import LinkHandler
from actors.io.outbound import Outbound
from actors.options import SiteOptions
from actors.io.outbox import Outbox, weight
from actors.io.peers import Peers, _Peer
from actors.io.reader import BATCH, Reader
from actors.io.relay import Relay, RouteHandler

__all__ = ["IOThread"]

log = logging.getLogger(__name__)


class Handler(LinkHandler, RouteHandler, Protocol):
    """What the I/O thread tells its site: of links (``LinkHandler``) and of routes
    (``actors.io.relay.RouteHandler``)."""


class IOThread(threading.Thread):
    """Runs the site's poll loop; see the module docstring."""

    def __init__(self, site_name: str, context: zmq.Context[zmq.Socket[bytes]], outbox: Outbox,
                 bind: str | None, connect: dict[str, str], options: SiteOptions,
                 handler: Handler,
                 routes: dict[str, str] | None = None) -> None:
        super().__init__(name=f"actors-io-{site_name}", daemon=True)
        self.site_name = site_name
        self.incarnation = uuid.uuid4().hex
        self._context = context
        self._outbox = outbox
        self._bind = bind
        self._initial_connect = dict(connect)
        self._initial_routes = dict(routes or {})
        self._options = options
        self._handler = handler
        self._peers = Peers()
        counters = TcpCounters()
        self._intake = Intake(site_name, options, counters)
        self._out = Outbound(site_name, options, self._peers, handler, counters,
                             self._pause_inbox)
        self._links = LinkLifecycle(site_name, self.incarnation, options, self._peers,
                                    handler, self)
        self._out.links = self._links
        self.relay = Relay(site_name, options, self._peers, handler, self._out)
        self._out.relay = self._links.router = self.relay
        self._bundler = Bundler(self._peers, self._out.send)
        self._log = self._links.log
        self._reader = Reader(site_name, options, self._peers, self._intake, self._links,
                              self._log, self.refuse)
        self._roles: dict[zmq.Socket[bytes], tuple[str, _Peer | None]] = {}
        self._poller = zmq.Poller()
        self._stopping = False
        self._next_beat = 0.0
        self._calls = Calls()
        self.ready = threading.Event()
        self.endpoint: str | None = None
        self.startup_error: BaseException | None = None

    # -- thread body -------------------------------------------------------------

    def run(self) -> None:
        try:
            self._setup()
        except Exception as err:  # reported to start(), which raises it in the caller
            self.startup_error = err
            self._close_all(linger=0)
            self.ready.set()
            return
        self.ready.set()
        try:
            self._loop()
        except Exception:
            log.exception("site %s: I/O loop crashed", self.site_name)
        finally:
            self._close_all(linger=self._options.linger)

    def _setup(self) -> None:
        self._poller.register(self._outbox.fileno, zmq.POLLIN)  # not a socket: no role
        if self._bind is not None:
            self._bind_router(self._bind)
        for name, endpoint in self._initial_connect.items():
            self._connect(name, endpoint)
        for site, via in self._initial_routes.items():
            self.relay.route_named(site, via)

    def _loop(self) -> None:
        while not self._stopping:
            # Often enough to bound what one message can make us hold (actors.io.intake).
            timeout_ms = 5 if self._peers.pending_bytes or self._intake.hot else 20
            if not self._out.paused:
                timeout_ms = self._outbox.sleep_timeout(timeout_ms)
            events = self._poller.poll(timeout_ms)
            self._outbox.asleep = False
            for sock, _event in events:
                if sock == self._outbox.fileno:  # a sender woke us: what it queued is read below
                    self._outbox.woken()
                    continue
                role, peer = self._roles.get(sock, ("", None))
                try:
                    self._read(sock, role, peer)
                except Exception:  # one bad message must not end the site's I/O
                    self._log.error("site %s: error handling %s input; going on",
                                    self.site_name, role, exc_info=True)
            if not self._out.paused:
                try:
                    self._read_outbox()
                except Exception:  # as for input: one bad message must not end it
                    self._log.error("site %s: error sending a queued message; going on",
                                    self.site_name, exc_info=True)
            if self.relay.pending:  # after the reads: a new peer has had its welcome
                self.relay.flush()
            if self._peers.pending_bytes or self._out.paused:
                self._out.flush()
            now = time.monotonic()
            self._intake.check(now)
            if now >= self._next_beat:
                self._next_beat = now + self._options.heartbeat_interval / 2
                self._links.beat(now)
                self._cut_stalled(now)
            self._handler.on_tick(now)

    def _read(self, sock: zmq.Socket[bytes], role: str, peer: _Peer | None) -> None:
        if role == "router":
            self._reader.read_router()
            self._handler.on_batch_end()
        elif role == "dealer" and peer is not None:
            self._reader.read_dealer(peer)
            self._handler.on_batch_end()
        elif role == "monitor":
            self._reader.read_monitor(sock, peer)

    # -- sockets -----------------------------------------------------------------

    def _register(self, sock: zmq.Socket[bytes], role: str, peer: _Peer | None) -> None:
        self._roles[sock] = (role, peer)
        self._poller.register(sock, zmq.POLLIN)

    def _unregister(self, sock: zmq.Socket[bytes]) -> None:
        self._roles.pop(sock, None)
        self._poller.unregister(sock)

    def _bind_router(self, endpoint: str) -> None:
        router = sockets.new_router(self._context, self._options)
        try:
            monitor = router.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        except zmq.ZMQError:
            router.close(linger=0)
            raise
        self._reader.router, self._reader.router_monitor = router, monitor
        # Polled in registration order: the monitor first, so a connection's accept or
        # disconnect event is handled before messages read in the same round (a hello
        # on a reused file descriptor must not meet the old connection's disconnect).
        self._register(monitor, "monitor", None)
        self._register(router, "router", None)  # registered before bind: a failed bind closes it
        router.bind(endpoint)
        self._out.router = router
        self.endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)

    def _connect(self, name: str, endpoint: str) -> None:
        peer = self._peers.add(name)
        if peer.dealer is not None:
            raise ValueError(f"site {name!r} is already connected by this site")
        dealer = sockets.new_dealer(self._context, self._options, self.site_name, name)
        monitor = dealer.get_monitor_socket(
            zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECT_RETRIED
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
        dealer.connect(endpoint)
        peer.dealer, peer.monitor, peer.refused, peer.endpoint = dealer, monitor, None, endpoint
        # The monitor first, as for the ROUTER: an old connection's disconnect must be
        # handled before what the next connection brought in the same round (read
        # after them, it took the peer down just after its welcome, and the peer's
        # streams with it).
        self._register(monitor, "monitor", peer)
        self._register(dealer, "dealer", peer)
        self.send_hello(peer)

    def send_hello(self, peer: _Peer) -> None:
        """Say hello on ``peer``'s DEALER (dropped, with a warning, if its queue is full)."""
        assert peer.dealer is not None
        try:
            peer.dealer.send(handshake.hello(self.site_name, self.incarnation), zmq.NOBLOCK)
        except zmq.Again:
            self._log.warning("site %s: hello to %s not sent: queue full", self.site_name,
                              peer.name)

    def _redial(self, peer: _Peer) -> None:
        """Close ``peer``'s DEALER with what it queued and dial again with a new one."""
        assert peer.dealer is not None and peer.monitor is not None
        for sock in (peer.monitor, peer.dealer):
            self._unregister(sock)
            sock.close(linger=0)
        if peer.dealer_fd is not None:
            self._intake.closed(peer.dealer_fd)
        peer.dealer = peer.monitor = peer.dealer_fd = None
        peer.connected_once = False
        self._connect(peer.name, peer.endpoint)

    def _close_all(self, linger: float) -> None:
        self._outbox.close_reader()
        for sock in list(self._roles):
            if self._roles[sock][0] == "monitor":
                sock.close(linger=0)
        for sock in list(self._roles):
            if not sock.closed:
                sock.close(linger=int(linger * 1000))
        self._roles.clear()

    # -- inbound -----------------------------------------------------------------

    def _read_outbox(self) -> None:
        """Send what other threads queued, up to a batch (the rest next round); small
        messages for one peer as one bundle (``actors.io.bundler``)."""
        items, outbox, out, bundler = self._outbox.items, self._outbox, self._out, self._bundler
        try:
            for _ in range(BATCH):
                if out.paused:
                    return
                try:
                    item = items.popleft()
                except IndexError:
                    return
                if item is None:  # calls run after everything queued before them is sent
                    bundler.flush()
                    self._calls.run_all()
                    continue
                peer, header, payload = item
                outbox.taken(weight(header, payload))
                bundler.send(peer, header, payload)
        finally:
            bundler.flush()

    # -- outbound (actors.io.outbound; these are the lifecycle's Wire) --------------

    def send(self, name: str, frames: Sequence[Any]) -> None:
        """Send a message to a peer now, or queue it behind that peer's backlog."""
        self._out.send(name, frames)

    def try_send(self, peer: _Peer, frames: Sequence[Any]) -> bool:
        """Send without blocking; False when the peer's queue is full."""
        return self._out.try_send(peer, frames)

    def router_send(self, routing_id: bytes, frames: Sequence[Any]) -> None:
        """Send to a connection by routing id, whether or not it said hello."""
        self._out.router_send(routing_id, frames)

    def refuse(self, routing_id: bytes, code: str, text: str) -> None:
        """Send REFUSE ``[code, text]`` to the connection ``routing_id``."""
        self._out.refuse(routing_id, code, text)

    def released(self, peer: _Peer) -> None:
        """``peer``'s backlog was dropped: what waited on it goes on."""
        self._out.released(peer)

    def greeted(self, fd: int, peer: _Peer) -> None:
        """The connection on ``fd`` said hello as ``peer``."""
        self._intake.greeted(fd, peer)

    def _pause_inbox(self, pause: bool) -> None:
        """Stop (or resume) taking messages from senders: they wait meanwhile (the loop
        reads ``self._out.paused``)."""

    def _cut_stalled(self, now: float) -> None:
        """Cut every peer that stopped reading while bytes wait for it."""
        for peer, queued in self._out.stalled(now):
            reason = (f"not reading: {queued >> 20} MiB queued and nothing acknowledged for "
                      f"over {self._options.stalled_peer_timeout:g} s")
            self._log.warning("site %s: cut %s: %s", self.site_name, peer.name, reason)
            if peer.dealer is not None:
                self._redial(peer)
            elif peer.fd is not None:
                shut_down(peer.fd)
            self._links.peer_down(peer, f"cut: {reason}")

    # -- calls from other threads -------------------------------------------------

    def post(self, call: Callable[[], Any]) -> Future[Any]:
        """Queue ``call`` to run on this thread; the caller must then wake the loop.

        The site wakes it with ``Outbox.wake``, so the call runs in order with the
        messages queued before.
        """
        return self._calls.post(call)

    def connect(self, name: str, endpoint: str) -> None:
        """Open a link to a peer (on this thread, through :meth:`post`)."""
        self._connect(name, endpoint)

    def request_stop(self) -> None:
        """Say goodbye to every peer and leave the loop (on this thread, through :meth:`post`)."""
        self._say_bye()
        self._stopping = True

    def _say_bye(self) -> None:
        bye = codec.encode(Kind.BYE, sender=self.site_name, body="stopping")
        for peer in self._peers:
            if peer.up:
                self.try_send(peer, [bye])


