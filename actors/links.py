"""The site's I/O thread: the one owner of every socket of a site.

It binds the ROUTER that peers connect to, owns one DEALER per peer we connect to,
and reads an inproc PULL socket on which other threads hand it outbound messages
(``actors.outbox``). Nothing else in the process touches these sockets.

Lifecycle of a peer link::

    (dealer) connect -> HELLO queued -> WELCOME received -> up
    (router) HELLO received -> WELCOME sent                -> up
    up -> disconnect event | BYE | silent past heartbeat_timeout -> down
    down -> any message, or a new HELLO/WELCOME            -> up again
    REFUSE received (version, name, key)                  -> refused (final)

Inbound messages are decoded here and handed to a :class:`LinkHandler` (the Site),
which delivers them to actors; the handler runs on this thread and must not block.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import zmq
from zmq.utils.monitor import recv_monitor_message

from actors import codec
from actors.codec import Header, Kind
from actors.errors import CodecError, VersionMismatch
from actors.greeting import HelloDeadlines
from actors.frames import NOBLOCK, NOBLOCK_MORE, message_size, recv_message, send_parts
from actors.options import SiteOptions

log = logging.getLogger(__name__)

#: Messages read from one socket before the loop looks at the others.
_BATCH = 256

#: REFUSE codes; "hello" means "say hello again", every other code is final.
REFUSE_HELLO = "hello"
REFUSE_VERSION = "version"
REFUSE_NAME = "name"
REFUSE_BUSY = "busy"  # the name is connected: retried, as that connection may be dead
REFUSE_AUTH = "auth"


class LinkHandler(Protocol):
    """What the I/O thread tells its site. Every call runs on the I/O thread."""

    def on_message(self, peer: str, header: Header, payload: list[zmq.Frame]) -> None: ...

    def on_peer_up(self, peer: str) -> None: ...

    def on_peer_down(self, peer: str, reason: str, refused: bool) -> None: ...

    def on_batch_end(self) -> None: ...

    def on_undeliverable(self, peer: str, header: bytes, reason: str) -> None: ...

    def on_tick(self, now: float) -> None: ...


@dataclass(eq=False)
class _Peer:
    """What the I/O thread knows of one peer site."""

    name: str
    dealer: zmq.Socket | None = None
    monitor: zmq.Socket | None = None
    connected_once: bool = False
    routing_id: bytes | None = None
    fd: int | None = None
    incarnation: str = ""
    up: bool = False
    refused: str | None = None
    retry_hello_at: float = 0.0  # when a "busy" refusal is worth another hello
    last_heard: float = 0.0
    last_sent: float = 0.0
    pending: deque[Sequence[Any]] = field(default_factory=deque)
    pending_bytes: int = 0


class IOThread(threading.Thread):
    """Runs the site's poll loop; see the module docstring."""

    def __init__(self, site_name: str, context: zmq.Context, inbox_endpoint: str,
                 bind: str | None, connect: dict[str, str], options: SiteOptions,
                 handler: LinkHandler) -> None:
        super().__init__(name=f"actors-io-{site_name}", daemon=True)
        self.site_name = site_name
        self.incarnation = uuid.uuid4().hex
        self._context = context
        self._inbox_endpoint = inbox_endpoint
        self._bind = bind
        self._initial_connect = dict(connect)
        self._options = options
        self._handler = handler
        self._peers: dict[str, _Peer] = {}
        self._by_routing_id: dict[bytes, str] = {}
        self._by_fd: dict[int, str] = {}
        self._greeting = HelloDeadlines(options.hello_timeout)
        self._roles: dict[zmq.Socket, tuple[str, _Peer | None]] = {}
        self._poller = zmq.Poller()
        self._pending_bytes = 0
        self._inbox_paused = False
        self._stopping = False
        self._next_beat = 0.0
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self.ready = threading.Event()
        self.endpoint: str | None = None
        self.startup_error: BaseException | None = None
        self._router: zmq.Socket | None = None
        self._router_monitor: zmq.Socket | None = None
        self._inbox: zmq.Socket | None = None

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
        self._inbox = self._context.socket(zmq.PULL)
        self._inbox.setsockopt(zmq.LINGER, 0)
        self._inbox.setsockopt(zmq.RCVHWM, self._options.hwm)
        self._inbox.bind(self._inbox_endpoint)
        self._register(self._inbox, "inbox", None)
        if self._bind is not None:
            self._bind_router(self._bind)
        for name, endpoint in self._initial_connect.items():
            self._connect(name, endpoint)

    def _loop(self) -> None:
        while not self._stopping:
            timeout_ms = 5 if self._pending_bytes else 100
            for sock, _event in self._poller.poll(timeout_ms):
                role, peer = self._roles.get(sock, ("", None))
                try:
                    self._read(sock, role, peer)
                except Exception:  # one bad message must not end the site's I/O
                    log.exception("site %s: error handling %s input; going on",
                                  self.site_name, role)
            if self._pending_bytes:
                self._flush_pending()
            now = time.monotonic()
            if now >= self._next_beat:
                self._next_beat = now + self._options.heartbeat_interval / 2
                self._beat(now)
            self._handler.on_tick(now)

    def _read(self, sock: zmq.Socket, role: str, peer: _Peer | None) -> None:
        if role == "inbox":
            self._read_inbox()
        elif role == "router":
            self._read_router()
            self._handler.on_batch_end()
        elif role == "dealer" and peer is not None:
            self._read_dealer(peer)
            self._handler.on_batch_end()
        elif role == "monitor":
            self._read_monitor(sock, peer)

    # -- sockets -----------------------------------------------------------------

    def _configure(self, sock: zmq.Socket, peer: str | None = None) -> None:
        """Set a new socket's options; ``peer`` names the site a DEALER connects to."""
        opts = self._options
        sock.setsockopt(zmq.LINGER, int(opts.linger * 1000))
        sock.setsockopt(zmq.SNDHWM, opts.hwm)
        sock.setsockopt(zmq.RCVHWM, opts.hwm)
        sock.setsockopt(zmq.MAXMSGSIZE, opts.max_message_size + codec.MAX_HEADER_SIZE)
        sock.setsockopt(zmq.HEARTBEAT_IVL, int(opts.heartbeat_interval * 1000))
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(opts.heartbeat_timeout * 1000))
        sock.setsockopt(zmq.HEARTBEAT_TTL, int(opts.heartbeat_timeout * 1000))
        if opts.curve is not None:
            opts.curve.configure(sock, server=sock.type == zmq.ROUTER, peer=peer)

    def _register(self, sock: zmq.Socket, role: str, peer: _Peer | None) -> None:
        self._roles[sock] = (role, peer)
        self._poller.register(sock, zmq.POLLIN)

    def _unregister(self, sock: zmq.Socket) -> None:
        self._roles.pop(sock, None)
        self._poller.unregister(sock)

    def _bind_router(self, endpoint: str) -> None:
        router = self._context.socket(zmq.ROUTER)
        self._configure(router)
        # Never drop a message silently for an unknown or full peer: raise instead.
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # A peer reconnecting under its routing id takes over its stale connection.
        router.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self._router = router
        self._register(router, "router", None)  # registered first: a failed bind closes it
        self._router_monitor = router.get_monitor_socket(
            zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self._register(self._router_monitor, "monitor", None)
        router.bind(endpoint)
        self.endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)

    def _connect(self, name: str, endpoint: str) -> None:
        peer = self._peers.setdefault(name, _Peer(name))
        if peer.dealer is not None:
            raise ValueError(f"site {name!r} is already connected by this site")
        dealer = self._context.socket(zmq.DEALER)
        try:
            self._configure(dealer, peer=name)
        except Exception:  # e.g. no key for this peer: an unregistered socket would leak
            dealer.close(linger=0)
            raise
        dealer.setsockopt(zmq.ROUTING_ID, f"{self.site_name}:{uuid.uuid4().hex}".encode())
        monitor = dealer.get_monitor_socket(
            zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
        dealer.connect(endpoint)
        peer.dealer, peer.monitor, peer.refused = dealer, monitor, None
        self._register(dealer, "dealer", peer)
        self._register(monitor, "monitor", peer)
        self._send_hello(peer)

    def _send_hello(self, peer: _Peer) -> None:
        assert peer.dealer is not None
        hello = codec.encode(Kind.HELLO, body=[self.site_name, self.incarnation])
        try:
            peer.dealer.send(hello, zmq.NOBLOCK)
        except zmq.Again:
            log.warning("site %s: hello to %s not sent: queue full", self.site_name, peer.name)

    def _close_all(self, linger: float) -> None:
        for sock in list(self._roles):
            if self._roles[sock][0] == "monitor":
                sock.close(linger=0)
        for sock in list(self._roles):
            if not sock.closed:
                sock.close(linger=int(linger * 1000))
        self._roles.clear()

    # -- inbound -----------------------------------------------------------------

    def _read_inbox(self) -> None:
        assert self._inbox is not None
        for _ in range(_BATCH):
            if self._inbox_paused:
                return
            try:
                frames = recv_message(self._inbox, copied=1)
            except zmq.Again:
                return
            route = frames[0]
            if route:  # b"peer\0header": see Site._hand_over
                split = route.index(b"\0")
                frames[0] = route[split + 1:]
                self.send(route[:split].decode(), frames)
            else:
                self._control()

    def _read_router(self) -> None:
        assert self._router is not None
        for _ in range(_BATCH):
            try:
                frames = self._recv_from_router()
            except zmq.Again:
                return
            if len(frames) < 2 or len(frames) > 2 + self._options.max_payload_frames:
                log.warning("site %s: dropped a message of %d frames", self.site_name, len(frames))
                continue
            self._on_router_message(frames[0], frames[1], frames[2:])

    def _recv_from_router(self) -> list[Any]:
        """Receive one message; its header as a Frame only from a peer not yet known.

        A hello's Frame tells the connection's file descriptor (SRCFD); for everyone
        else bytes are cheaper.
        """
        assert self._router is not None
        routing_id = self._router.recv(NOBLOCK)
        copied = 2 if routing_id in self._by_routing_id else 1
        return [routing_id] + recv_message(self._router, copied, first_received=True)

    def _on_router_message(self, routing_id: bytes, head: Any,
                           payload: list[zmq.Frame]) -> None:
        try:
            header = codec.decode(head.buffer if isinstance(head, zmq.Frame) else head)
        except VersionMismatch as err:
            self._refuse(routing_id, REFUSE_VERSION, f"this site speaks protocol "
                         f"{codec.PROTOCOL_VERSION}; {err}")
            return
        except CodecError as err:
            log.warning("site %s: bad message from %s: %s", self.site_name,
                        self._by_routing_id.get(routing_id, "an unnamed peer"), err)
            return
        if header.kind is Kind.HELLO:
            self._on_hello(routing_id, head, header)
            return
        name = self._by_routing_id.get(routing_id)
        if name is None:
            self._refuse(routing_id, REFUSE_HELLO, "say hello first")
            return
        peer = self._peers[name]
        if peer.routing_id != routing_id:
            return  # an old connection of a peer that has since said hello again
        self._heard(peer)
        self._dispatch(peer, header, payload)

    def _on_hello(self, routing_id: bytes, head: zmq.Frame, header: Header) -> None:
        body = header.body
        if not (isinstance(body, list) and len(body) == 2
                and all(isinstance(part, str) for part in body) and valid_site_name(body[0])):
            self._refuse(routing_id, REFUSE_NAME, "malformed hello")
            return
        name, incarnation = body
        code, refusal = self._hello_refusal(name, incarnation, routing_id, head)
        if refusal:
            log.warning("site %s: refused hello from %r: %s", self.site_name, name, refusal)
            self._refuse(routing_id, code, refusal)
            return
        peer = self._peers.setdefault(name, _Peer(name))
        if peer.routing_id is not None and peer.routing_id != routing_id:
            self._by_routing_id.pop(peer.routing_id, None)
        peer.routing_id, peer.incarnation = routing_id, incarnation
        self._by_routing_id[routing_id] = name
        fd = head.get(zmq.SRCFD) if isinstance(head, zmq.Frame) else None
        if fd is not None and fd >= 0:
            peer.fd = fd
            self._by_fd[fd] = name
            self._greeting.greeted(fd)
        self._router_send(routing_id, [codec.encode(
            Kind.WELCOME, body=[self.site_name, self.incarnation])])
        self._heard(peer)

    def _hello_refusal(self, name: str, incarnation: str, routing_id: bytes,
                       head: Any) -> tuple[str, str]:
        """The refusal code and reason for a hello, or ("", "") to welcome it."""
        if name == self.site_name:
            return REFUSE_NAME, f"{name!r} is this site's own name"
        if self._options.curve is not None:
            refusal = self._options.curve.check_name(name, head)
            if refusal:
                return REFUSE_NAME, refusal
        peer = self._peers.get(name)
        if (peer is not None and peer.up and peer.routing_id not in (None, routing_id)
                and peer.incarnation != incarnation):
            return REFUSE_BUSY, f"a site named {name!r} is already connected"
        return "", ""

    def _read_dealer(self, peer: _Peer) -> None:
        assert peer.dealer is not None
        for _ in range(_BATCH):
            try:
                frames = recv_message(peer.dealer, copied=1)
            except zmq.Again:
                return
            if len(frames) > 1 + self._options.max_payload_frames:
                log.warning("site %s: dropped a message of %d frames from %s",
                            self.site_name, len(frames), peer.name)
                continue
            try:
                header = codec.decode(frames[0])
            except CodecError as err:
                log.warning("site %s: bad message from %s: %s", self.site_name, peer.name, err)
                continue
            self._on_dealer_message(peer, header, frames[1:])

    def _on_dealer_message(self, peer: _Peer, header: Header, payload: list[zmq.Frame]) -> None:
        if header.kind is Kind.REFUSE:
            self._on_refused(peer, header.body)
        elif header.kind is Kind.WELCOME:
            body = header.body
            named = body[0] if isinstance(body, list) and body else None
            if named != peer.name:
                self._on_refused(peer, [REFUSE_NAME, f"the site at that endpoint is {named!r}"])
                return
            peer.refused, peer.retry_hello_at = None, 0.0
            self._heard(peer)
        elif peer.up or peer.refused is None:
            self._heard(peer)
            self._dispatch(peer, header, payload)

    def _on_refused(self, peer: _Peer, body: Any) -> None:
        code, text = (body + ["", ""])[:2] if isinstance(body, list) else ("", str(body))
        if code == REFUSE_HELLO and peer.dealer is not None:
            self._send_hello(peer)
            return
        if code == REFUSE_BUSY and peer.dealer is not None:
            # A site restarted under its name: the peer may not have noticed the old
            # connection die yet. Refused for now (callers see why); hello again later.
            peer.retry_hello_at = time.monotonic() + self._options.heartbeat_interval
        log.error("site %s: %s refused the link: %s", self.site_name, peer.name, text)
        peer.refused = str(text)
        self._peer_down(peer, f"refused: {text}", refused=True)

    def _dispatch(self, peer: _Peer, header: Header, payload: list[zmq.Frame]) -> None:
        kind = header.kind
        if kind in (Kind.TELL, Kind.ASK, Kind.REPLY, Kind.FAIL):
            sender = header.sender
            if sender != peer.name and not (sender.startswith(peer.name)
                                            and sender[len(peer.name)] == "/"):
                log.warning("site %s: %s sent a message claiming to be from %r; dropped",
                            self.site_name, peer.name, header.sender)
                return
            self._handler.on_message(peer.name, header, payload)
        elif kind is Kind.BYE:
            self._peer_down(peer, f"peer stopped ({header.body})")

    def _read_monitor(self, sock: zmq.Socket, peer: _Peer | None) -> None:
        while True:
            try:
                event = recv_monitor_message(sock, zmq.NOBLOCK)
            except zmq.Again:
                return
            self._on_monitor_event(peer, event["event"], event["value"])

    def _on_monitor_event(self, peer: _Peer | None, event: int, value: int) -> None:
        if peer is None:  # the router's monitor: value is the connection's fd
            if event == zmq.EVENT_ACCEPTED:
                self._greeting.accepted(value, time.monotonic())
                return
            self._greeting.closed(value)
            name = self._by_fd.pop(value, None)
            router_peer = self._peers.get(name) if name else None
            if router_peer is not None and router_peer.fd == value:
                router_peer.fd = None
                if router_peer.dealer is None:
                    self._peer_down(router_peer, "connection lost")
        elif event == zmq.EVENT_CONNECTED:
            if peer.connected_once:
                self._send_hello(peer)
            peer.connected_once = True
        elif event == zmq.EVENT_DISCONNECTED:
            self._peer_down(peer, "connection lost")
        elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            self._on_refused(peer, [REFUSE_AUTH, "the peer does not trust this site's key"])

    # -- outbound ----------------------------------------------------------------

    def send(self, name: str, frames: Sequence[Any]) -> None:
        """Send a message to a peer now, or queue it behind that peer's backlog."""
        peer = self._peers.get(name)
        if peer is None or (peer.dealer is None and peer.routing_id is None):
            self._handler.on_undeliverable(name, _frame_bytes(frames[0]), "unknown site")
            return
        if peer.refused is not None:
            self._handler.on_undeliverable(name, _frame_bytes(frames[0]),
                                           f"refused: {peer.refused}")
            return
        if peer.pending or not self._try_send(peer, frames):
            size = message_size(frames)
            peer.pending.append(frames)
            peer.pending_bytes += size
            self._pending_bytes += size
            self._pause_inbox_if_full()

    def _try_send(self, peer: _Peer, frames: Sequence[Any]) -> bool:
        """Send without blocking; False when the peer's queue is full."""
        try:
            if peer.dealer is not None:
                send_parts(peer.dealer, frames, NOBLOCK)
            else:
                assert peer.routing_id is not None and self._router is not None
                self._router.send(peer.routing_id, NOBLOCK_MORE)
                send_parts(self._router, frames, 0)
        except zmq.Again:
            return False
        except zmq.ZMQError as err:  # EHOSTUNREACH: the peer's connection is gone
            self._handler.on_undeliverable(peer.name, _frame_bytes(frames[0]), str(err))
            self._peer_down(peer, f"unreachable ({err})")
            return True
        peer.last_sent = time.monotonic()
        return True

    def _router_send(self, routing_id: bytes, frames: Sequence[Any]) -> None:
        assert self._router is not None
        try:
            self._router.send(routing_id, zmq.NOBLOCK | zmq.SNDMORE)
            self._router.send_multipart(frames, copy=False)
        except zmq.ZMQError as err:
            log.info("site %s: reply to an unnamed peer not sent: %s", self.site_name, err)

    def _refuse(self, routing_id: bytes, code: str, text: str) -> None:
        self._router_send(routing_id, [codec.encode(Kind.REFUSE, body=[code, text])])

    def _flush_pending(self) -> None:
        for peer in self._peers.values():
            while peer.pending and self._try_send(peer, peer.pending[0]):
                size = message_size(peer.pending.popleft())
                peer.pending_bytes -= size
                self._pending_bytes -= size
        if self._inbox_paused and self._pending_bytes < self._options.max_pending_bytes // 2:
            self._inbox_paused = False
            assert self._inbox is not None
            self._poller.register(self._inbox, zmq.POLLIN)

    def _pause_inbox_if_full(self) -> None:
        """Stop taking new messages while slow peers hold too many bytes: senders wait."""
        if not self._inbox_paused and self._pending_bytes > self._options.max_pending_bytes:
            self._inbox_paused = True
            assert self._inbox is not None
            self._poller.unregister(self._inbox)

    # -- liveness ----------------------------------------------------------------

    def _heard(self, peer: _Peer) -> None:
        peer.last_heard = time.monotonic()
        if not peer.up:
            peer.up = True
            self._handler.on_peer_up(peer.name)

    def _peer_down(self, peer: _Peer, reason: str, refused: bool = False) -> None:
        if peer.pending:
            log.warning("site %s: %d messages to %s dropped: %s", self.site_name,
                        len(peer.pending), peer.name, reason)
            self._pending_bytes -= peer.pending_bytes
            peer.pending.clear()
            peer.pending_bytes = 0
        if peer.up or refused:
            peer.up = False
            self._handler.on_peer_down(peer.name, reason, refused)

    def _beat(self, now: float) -> None:
        self._greeting.drop_overdue(now)
        ping = None
        for peer in list(self._peers.values()):
            if peer.retry_hello_at and now >= peer.retry_hello_at and peer.refused is not None:
                peer.retry_hello_at = now + self._options.heartbeat_interval
                self._send_hello(peer)
            if not peer.up:
                continue
            if now - peer.last_heard > self._options.heartbeat_timeout:
                self._peer_down(peer, f"silent for over {self._options.heartbeat_timeout:g} s")
            elif now - peer.last_sent >= self._options.heartbeat_interval and not peer.pending:
                ping = ping or codec.encode(Kind.PING, sender=self.site_name)
                self._try_send(peer, [ping])

    # -- calls from other threads -------------------------------------------------

    def post(self, call: Callable[[], Any]) -> Future[Any]:
        """Queue ``call`` to run on this thread; the caller must then wake the loop.

        The site wakes it with an empty control frame through its outbox, so the call
        runs in order with the messages that thread sent before.
        """
        future: Future[Any] = Future()
        self._calls.put((call, future))
        return future

    def _control(self) -> None:
        while True:
            try:
                call, future = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                future.set_result(call())
            except Exception as err:  # the caller raises it where it waits
                future.set_exception(err)

    def connect(self, name: str, endpoint: str) -> None:
        """Open a link to a peer (on this thread, through :meth:`post`)."""
        self._connect(name, endpoint)

    def request_stop(self) -> None:
        """Say goodbye to every peer and leave the loop (on this thread, through :meth:`post`)."""
        self._say_bye()
        self._stopping = True

    def peer_names(self) -> list[str]:
        """The peers that are up (on this thread, through :meth:`post`)."""
        return sorted(name for name, peer in self._peers.items() if peer.up)

    def _say_bye(self) -> None:
        bye = codec.encode(Kind.BYE, sender=self.site_name, body="stopping")
        for peer in self._peers.values():
            if peer.up:
                self._try_send(peer, [bye])


def valid_site_name(name: object) -> bool:
    """Whether a site name is usable in addresses: no "/", not empty, not huge."""
    return isinstance(name, str) and 0 < len(name) <= 200 and "/" not in name and "\0" not in name


def _frame_bytes(frame: Any) -> bytes:
    return frame.bytes if isinstance(frame, zmq.Frame) else bytes(frame)
