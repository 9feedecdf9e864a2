"""A site: one process's actors and its links to other sites.

App code and actors call the site from any thread. Sockets belong to the site's I/O
thread (``actors.io.thread``); other threads queue messages for it in ``actors.io.outbox``.
Messages for local actors skip the sockets and go straight to the actor's mailbox.
What the I/O thread tells the site, and answers to remote asks, go through the
site's ``actors.dispatch.Dispatcher``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import pykka
import zmq

from actors import codec
from actors.delivery import SPAWNING, Acting, Delivery, LocalReply, Spawning, deliver
from actors.asks import Asks
from actors.codec import Kind
from actors.dispatch import Dispatcher
from actors.errors import (AskTimeout, MessageTooLarge, SiteClosed, UnknownActor, UnknownSite,
                           WaitTimeout)
from actors.io.frames import message_size
from actors.addresses import valid_site_name
from actors.io.thread import IOThread
from actors.options import SiteOptions
from actors.process import keep_chunk_buffers
from actors.io.outbox import InboxBudget, Outbox
from actors.peerstates import PeerState, PeerStates, PeerWatchers
from actors.addresses import split_address
from actors.refs import LocalRef, Ref
from actors.registry import Registry

__all__ = ["Site"]

log = logging.getLogger(__name__)


class Site:
    """Hosts actors under names and links them to the actors of other sites.

    Sites it is not linked to are reached through the peers they share with it (a
    route each peer announces, ``actors.io.relay``): ``tell``, ``ask``, ``wait_for`` and
    the peer events work for them as for peers, and :meth:`routes` lists them.

    Args:
        name: this site's name; addresses of its actors are ``"name/actor"``.
        bind: an endpoint to accept peers on (``"tcp://127.0.0.1:0"`` picks a port).
        connect: peers to connect to, ``{site_name: endpoint}``.
        routes: routes the app names, ``{site_name: peer}``: reach that site through that
            linked peer, whatever the peers announce (see :meth:`route`).
        **options: see :class:`~actors.options.SiteOptions`.
    """

    def __init__(self, name: str, bind: str | None = None,
                 connect: Mapping[str, str] | None = None,
                 routes: Mapping[str, str] | None = None, **options: Any) -> None:
        if not valid_site_name(name):
            raise ValueError(f"a site name is 1-200 characters without '/', not {name!r}")
        self.name = name
        self.options = SiteOptions.from_kwargs(**options)
        self._bind = bind
        self._connect = dict(connect or {})
        for peer in self._connect:
            self._check_peer_name(peer)
        self._routes = dict(routes or {})
        for site, via in self._routes.items():
            self._check_peer_name(site)
            self._check_peer_name(via)
        self._registry = Registry()
        self._spawn_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._asks = Asks()
        self._watchers = PeerWatchers()
        self._peer_states = PeerStates(name, [*self._connect, *self._routes])
        self._acting = Acting()
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._io: IOThread | None = None
        self._outbox: Outbox | None = None
        self._closed = False
        self._dispatcher = Dispatcher(name, self.options, self._registry, self._asks,
                                      self._peer_states, self._watchers, self._send_answer)

    # -- lifecycle -----------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Site:
        """Bind, connect and start the I/O thread; returns once the site is usable."""
        if self._io is not None:
            raise RuntimeError(f"site {self.name} was already started")
        if self.options.keep_buffers:
            keep_chunk_buffers(min(self.options.max_message_size, 8 << 20))
        self._context = zmq.Context()
        if self.options.curve is not None:  # the ZAP handler must be up before the ROUTER binds
            self.options.curve.start(self._context)
        self._outbox = Outbox(self.options.hwm, InboxBudget(self.options.max_pending_bytes))
        self._io = IOThread(self.name, self._context, self._outbox, self._bind, self._connect,
                            self.options, self._dispatcher, self._routes)
        self._io.start()
        if not self._io.ready.wait(timeout) or self._io.startup_error is not None:
            error = self._io.startup_error
            self._io.join(timeout)
            self._outbox.close()
            if self.options.curve is not None:
                self.options.curve.stop()
            self._context.term()
            self._closed = True
            raise SiteClosed(f"site {self.name} could not start: {error}") from error
        return self

    @property
    def endpoint(self) -> str | None:
        """The endpoint this site really bound (with its chosen port), or None."""
        return self._io.endpoint if self._io is not None else None

    @property
    def is_secure(self) -> bool:
        """Whether every link of this site is encrypted and authenticated (CurveZMQ)."""
        return self.options.curve is not None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every actor, say goodbye to peers, close the sockets and end the threads."""
        # Closed first, then the actors gathered: a spawn that registered its actor
        # too late for the gathering sees closed after registering, and stops it.
        with self._close_lock:  # one stop does the work when several threads call it
            already_closed, self._closed = self._closed, True
        if already_closed:
            return
        deadline = time.monotonic() + timeout
        self._stop_actors(deadline)
        if self._io is None:   # never started: actors spawned before start are stopped
            return
        io, outbox, context = self._io, self._outbox, self._context
        assert outbox is not None and context is not None
        try:
            io.post(io.request_stop)
            outbox.wake()
        except SiteClosed:
            pass
        io.join(max(0.1, deadline - time.monotonic()))
        outbox.close()
        if self.options.curve is not None:  # after the ROUTER closed, before the context ends
            self.options.curve.stop()
        self._asks.fail_all(SiteClosed(f"site {self.name} stopped"))
        self._term_context(context, max(0.1, deadline - time.monotonic()))

    def _stop_actors(self, deadline: float) -> None:
        futures = [ref.stop(block=False) for ref in self._registry.all() if ref.is_alive()]
        for future in futures:
            try:
                future.get(timeout=max(0.05, deadline - time.monotonic()))
            except pykka.Timeout:
                log.warning("site %s: an actor did not stop in time", self.name)
        self._registry.clear()

    def _term_context(self, context: zmq.Context[zmq.Socket[bytes]], timeout: float) -> None:
        ender = threading.Thread(target=context.term, name=f"actors-term-{self.name}",
                                 daemon=True)
        ender.start()
        ender.join(timeout)
        if ender.is_alive():
            log.error("site %s: ZeroMQ context did not end: a socket is still open", self.name)

    def __enter__(self) -> Site:
        if self._io is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- actors ----------------------------------------------------------------------

    def spawn(self, actor_class: type[pykka.Actor], name: str, *args: Any,
              **kwargs: Any) -> LocalRef:
        """Start an actor of ``actor_class`` under ``name``; extra arguments go to its __init__.

        ``actor_class`` is an :class:`actors.Actor` (which also learns each message's
        sender and payload) or any pykka actor (which gets the messages as sent).

        Raises:
            ValueError: the name is malformed or an actor of that name is running.
            SiteClosed: the site is stopping or stopped, also when ``stop`` began
                while the actor was being built (that actor is stopped), so no actor
                outlives its site.
            Exception: whatever the actor's ``__init__`` raised (nothing stays registered).
        """
        self._check_actor_name(name)
        with self._spawn_lock:
            if self._registry.get(name) is not None:
                raise ValueError(f"an actor named {name!r} already runs on site {self.name}")
            return self._start_locked(actor_class, name, args, kwargs)

    def spawn_once(self, actor_class: type[pykka.Actor], name: str, *args: Any,
                   **kwargs: Any) -> LocalRef:
        """Return the running actor ``name``, spawning it first if there is none.

        For a site's service actors that any thread may be the first to need: two
        callers racing get the same actor.
        """
        self._check_actor_name(name)
        with self._spawn_lock:
            return self.actor(name) or self._start_locked(actor_class, name, args, kwargs)

    def _check_actor_name(self, name: str) -> None:
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"an actor name is a non-empty string without '/', not {name!r}")
        self._check_open()  # early; _start_locked checks again once the actor is known

    def _start_locked(self, actor_class: type[pykka.Actor], name: str, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> LocalRef:
        """Start the actor ``name`` (the caller holds the spawn lock and checked the name)."""
        self._registry.forget_stopped()
        token = SPAWNING.set(Spawning(self, name, self._registry, self._acting))
        try:
            ref: pykka.ActorRef[Any] = actor_class.start(*args, **kwargs)
        except BaseException:
            # An actors.Actor registers itself before its subclass's __init__ ends: a
            # failed __init__ must not leave its name taken by an actor that never ran.
            half_built = self._registry.get(name)  # nothing ran under this name before
            if half_built is not None:
                self._registry.remove(name, half_built)
            raise
        finally:
            SPAWNING.reset(token)
        self._registry.add(name, ref)  # a plain pykka actor is known from here on
        if self._closed:  # stop() began while the actor was built; it may have missed it
            ref.stop(block=False)
            raise SiteClosed(f"site {self.name} stopped while {name!r} was being spawned")
        return LocalRef(self, f"{self.name}/{name}", ref)

    def actor(self, name: str) -> LocalRef | None:
        """The local actor named ``name``, if it is running."""
        ref = self._registry.get(name)
        return LocalRef(self, f"{self.name}/{name}", ref) if ref is not None else None

    def ref(self, address: str) -> Ref:
        """A reference to the actor at ``"site/actor"``, local or remote."""
        return Ref(self, address)

    def watch_peers(self, actor_ref: pykka.ActorRef[Any] | LocalRef) -> None:
        """Tell ``actor_ref`` a PeerUp or PeerDown whenever a peer comes or goes."""
        self._watchers.add(_pykka_ref(actor_ref))

    def unwatch_peers(self, actor_ref: pykka.ActorRef[Any] | LocalRef) -> None:
        """Stop telling ``actor_ref`` about peers (stopped actors are forgotten anyway)."""
        self._watchers.remove(_pykka_ref(actor_ref))

    # -- messages ----------------------------------------------------------------------

    def tell(self, address: str, message: Any, payload: Sequence[Any] = (),
             via: str | None = None) -> None:
        """Send ``message`` (and raw payload frames) to an actor without waiting.

        ``via``: the linked peer to reach the address's site through, for this message
        and the next ones (as :meth:`route`); a site linked to us is reached directly.

        Raises:
            UnknownSite, PeerLost, PeerRefused: the address's site cannot be reached.
            UnknownActor: (local address) no such actor.
            CodecError: the message cannot be encoded with msgpack.
            MessageTooLarge: the payload is over ``max_message_size``.
        """
        site, actor = split_address(address)
        sender = self._sender_address()
        if site == self.name:
            deliver(self._local(actor, address), Delivery(message, sender, _views(payload)),
                    None, address)
            return
        if via is not None:
            self._route_through(site, via)
        self._check_sendable(site, payload)
        header = codec.encode(Kind.TELL, actor, sender, 0, message)
        self._hand_over(site, header, payload)

    def ask(self, address: str, message: Any, *, timeout: float | None = None,
            block: bool = True, payload: Sequence[Any] = (), via: str | None = None) -> Any:
        """Send ``message`` and wait for the actor's answer, or return a future of it.

        ``via``: as for :meth:`tell`.

        Raises (or sets on the future):
            AskTimeout: no answer within ``timeout`` seconds.
            ActorError: the actor raised while answering.
            PeerLost: the peer went away before answering.
            UnknownSite, UnknownActor, PeerRefused, CodecError, MessageTooLarge.
        """
        timeout = self.options.default_ask_timeout if timeout is None else timeout
        site, actor = split_address(address)
        future: Future[Any] = Future()
        if site == self.name:
            ref = self._local(actor, address)
            corr = self._asks.add(future, None, time.monotonic(), timeout, address)
            delivery = Delivery(message, self._sender_address(), _views(payload), True)
            deliver(ref, delivery, LocalReply(future, address), address)
        else:
            if via is not None:
                self._route_through(site, via)
            self._check_sendable(site, payload)
            corr = self._asks.add(future, site, time.monotonic(), timeout, address)
            try:
                header = codec.encode(Kind.ASK, actor, self._sender_address(), corr, message)
                self._hand_over(site, header, payload)
            except BaseException:
                self._asks.discard(corr)
                raise
        if not block:
            return future
        try:
            return future.result(timeout)
        except FutureTimeout:
            self._asks.discard(corr)
            raise AskTimeout(f"no answer from {address} within {timeout:g} s") from None

    def _hand_over(self, site: str, header: bytes, payload: Sequence[Any]) -> None:
        outbox = self._outbox
        if outbox is None:
            raise SiteClosed(f"site {self.name} is not started")
        outbox.send(site, header, payload)

    def _send_answer(self, peer: str, header: bytes) -> None:
        """Send the answer to a remote ask from any thread (the I/O thread sends it itself)."""
        io = self._io
        if io is not None and threading.current_thread() is io:
            io.send(peer, [header])
            return
        try:
            self._hand_over(peer, header, ())
        except SiteClosed:
            log.info("site %s: answer to %s not sent: site stopped", self.name, peer)

    def _sender_address(self) -> str:
        return self._acting.address or self.name

    def _local(self, actor: str, address: str) -> pykka.ActorRef[Any]:
        ref = self._registry.get(actor)
        if ref is None:
            raise UnknownActor(f"no actor at {address}")
        return ref

    def _check_sendable(self, site: str, payload: Sequence[Any]) -> None:
        if not self._peer_states.is_up(site) or self._closed:  # one lookup when all is well
            # A congested peer: wait (a second at a time) until it drains or is cut.
            self._check_open()
            while self._peer_states.check(site):
                self._check_open()
        if payload:
            if len(payload) > self.options.max_payload_frames:
                raise MessageTooLarge(f"{len(payload)} payload frames; at most "
                                      f"{self.options.max_payload_frames}")
            if message_size(payload) > self.options.max_message_size:
                raise MessageTooLarge(f"payload over {self.options.max_message_size} bytes")

    def _check_open(self) -> None:
        if self._closed:
            raise SiteClosed(f"site {self.name} is stopped")

    # -- peers -------------------------------------------------------------------------

    def connect(self, name: str, endpoint: str, timeout: float = 5.0) -> None:
        """Connect to another site at ``endpoint``; messages to it may be sent at once."""
        self._check_peer_name(name)
        io, outbox = self._io, self._outbox
        if io is None or outbox is None:
            self._connect[name] = endpoint
            self._peer_states.connecting(name)
            return
        self._peer_states.connecting(name)
        done = io.post(lambda: io.connect(name, endpoint))
        outbox.wake()
        done.result(timeout)

    def route(self, site: str, via: str | None, timeout: float = 5.0) -> None:
        """Reach ``site`` through the linked peer ``via``, whatever the peers announce
        (``via`` None: drop that route, and learn one again).

        The route holds while ``via`` is linked and announces ``site`` (linked to it, or
        reachable from it); otherwise the learned route is used. A site we are linked to
        is reached over its own link.
        """
        self._check_peer_name(site)
        if via is not None:
            self._check_peer_name(via)
        if via is None:
            self._routes.pop(site, None)
        else:
            self._routes[site] = via
            self._peer_states.connecting(site)
        io, outbox = self._io, self._outbox
        if io is None or outbox is None:
            return
        done = io.post(lambda: io.relay.route_named(site, via))
        outbox.wake()
        done.result(timeout)

    def _route_through(self, site: str, via: str) -> None:
        """A message's ``via=``: name the route once; later messages find it named.

        Raises:
            UnknownSite: ``via`` is not a peer linked to this site and up, or does not
                reach ``site``.
        """
        if self._routes.get(site) == via:
            return
        state = self._peer_states.state(via)
        if state is None or state.via or not self._peer_states.is_up(via):
            raise UnknownSite(f"site {self.name} is not linked to {via!r}: no route to "
                              f"{site!r} through it")
        self.route(site, via)
        state = self._peer_states.state(site)
        if state is None or (state.via != via and state.via):
            raise UnknownSite(f"{via} does not reach {site!r} (it announces no route to it)")

    def wait_for(self, name: str, timeout: float = 10.0) -> None:
        """Return once the site ``name`` is linked and has said hello, or is reachable
        through a relay.

        Raises:
            WaitTimeout: it did not within ``timeout`` seconds.
            PeerRefused: it refused our link.
        """
        if not self._peer_states.wait_up(name, timeout):
            state = self._peer_states.state(name)
            why = f": {state.reason}" if state is not None and state.reason else ""
            raise WaitTimeout(f"site {name} did not connect within {timeout:g} s{why}")

    def peers(self) -> list[str]:
        """Names of the peers linked to this site and up now (see :meth:`routes`)."""
        return self._peer_states.up()

    def routes(self) -> dict[str, str]:
        """The sites reachable now through a relay, each with the linked peer it goes
        through."""
        return self._peer_states.routes()

    def state_of(self, name: str) -> PeerState | None:
        """What this site knows of the site ``name`` now (None: nothing): connecting
        (with what the last attempt met), up, congested, lost or refused (with why),
        and the peer it is reached through if it is routed."""
        return self._peer_states.state(name)

    def _check_peer_name(self, name: str) -> None:
        if not valid_site_name(name) or name == self.name:
            raise ValueError(f"bad peer site name {name!r}")



def _views(payload: Sequence[Any]) -> tuple[memoryview, ...]:
    return tuple(memoryview(frame) for frame in payload)



def _pykka_ref(ref: pykka.ActorRef[Any] | LocalRef) -> pykka.ActorRef[Any]:
    return ref.actor_ref if isinstance(ref, LocalRef) else ref
