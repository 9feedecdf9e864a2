"""The site's side of its links: what the I/O thread tells it, and answers sent back.

The I/O thread (``actors.io.thread``) calls a :class:`Dispatcher` for every message and
peer event: replies settle pending asks, tells and asks go to local actors (a read
batch at a time, ``actors.inbound``), peer changes update the site's peer states
and reach the actors that watch them. Answers to remote asks leave through
:meth:`Dispatcher.send_reply` and :meth:`Dispatcher.send_failure`, from any thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pykka
import zmq

from actors import backlog, codec
from actors.codec import Header, Kind
from actors.asks import Asks
from actors.errors import ActorError, ActorsError, CodecError, PeerLost, PeerRefused, error_from_wire
from actors.events import PeerDown, PeerUp
from actors.inbound import Inbound
from actors.options import SiteOptions
from actors.peerstates import PeerStates, PeerWatchers
from actors.ratelog import LogLimit
from actors.registry import Registry

log = logging.getLogger(__name__)

# Module constants: reading an enum member off its class costs more, once per message.
_REPLY, _FAIL = Kind.REPLY, Kind.FAIL


class Dispatcher:
    """The :class:`~actors.io.thread.LinkHandler` of a site; its ``on_*`` run on the I/O thread.

    Args:
        site_name, options: the site's name and settings.
        registry: the site's actors, to deliver to.
        asks: the site's pending asks, settled by replies, failures and lost peers.
        peers, watchers: the site's peer states, and the actors told of changes.
        send_answer: ``(peer, header)``, sends an answer from any thread.
    """

    def __init__(self, site_name: str, options: SiteOptions, registry: Registry, asks: Asks,
                 peers: PeerStates, watchers: PeerWatchers,
                 send_answer: Callable[[str, bytes], None]) -> None:
        self._site_name = site_name
        self._options = options
        self._registry = registry
        self._asks = asks
        self._peers = peers
        self._watchers = watchers
        self._send_answer = send_answer
        self._inbound = Inbound(site_name, options, registry, self)
        self._next_expiry = 0.0
        self._next_backlog_check = 0.0
        # Peers come and go as often as a peer can open a connection: bounded lines.
        self._log = LogLimit(log)

    # -- called by the I/O thread (LinkHandler) --------------------------------------

    def on_message(self, peer: str, header: Header, payload: list[zmq.Frame]) -> None:
        kind = header.kind
        if kind is _REPLY:
            self._asks.resolve(header.corr, peer, header.body)
        elif kind is _FAIL:
            self._asks.fail(header.corr, peer, _failure(header))
        else:
            self._inbound.add(peer, header, payload)

    def on_batch_end(self) -> None:
        self._inbound.flush()

    def on_peer_up(self, peer: str, via: str = "") -> None:
        self._log.info("site %s: peer %s up%s", self._site_name, peer,
                       f" through {via}" if via else "")
        self._peers.set_up(peer, via)
        self._notify(PeerUp(peer, via))

    def on_route_moved(self, site: str, via: str) -> None:
        """The routed ``site`` is reached through ``via`` now (the old relay still runs)."""
        self._log.info("site %s: %s is reached through %s now", self._site_name, site, via)
        self._peers.set_up(site, via)

    def on_peer_down(self, peer: str, reason: str, refused: bool) -> None:
        self._log.info("site %s: peer %s down: %s", self._site_name, peer, reason)
        self._peers.set_down(peer, reason, refused)
        if refused:
            self._asks.fail_peer(peer, PeerRefused(f"{peer} refused: {reason}"))
            reason = f"refused: {reason}"
        else:
            self._asks.fail_peer(peer, PeerLost(f"{peer}: {reason}"))
        self._notify(PeerDown(peer, reason))

    def on_answers_lost(self, peer: str, reason: str) -> None:
        """The connection ``peer`` answered us over dropped (the link stays up): what it
        had answered on it is lost, so our pending asks to it fail now, not at timeout."""
        self._log.info("site %s: answers from %s lost: %s", self._site_name, peer, reason)
        self._asks.fail_peer(peer, PeerLost(f"{peer}: {reason}"))

    def on_peer_forgotten(self, peer: str) -> None:
        self._peers.forget(peer)

    def on_peer_congested(self, peer: str, congested: bool) -> None:
        self._peers.set_congested(peer, congested)

    def on_peer_connecting(self, peer: str, reason: str) -> None:
        self._peers.still_connecting(peer, reason)

    def on_undeliverable(self, peer: str, header: bytes, error: ActorsError) -> None:
        try:
            decoded = codec.decode(header)
            routed = codec.routed(decoded.body) if decoded.kind is Kind.ROUTED else None
            if routed is not None and routed.origin == self._site_name:
                peer, decoded = routed.dest, codec.decode(routed.inner)  # an ask of ours
            bundled = codec.unbundle(decoded.body) if decoded.kind is Kind.BUNDLE else [decoded]
        except CodecError:
            return
        for message in bundled:
            if message.kind is Kind.ASK:
                self._asks.fail(message.corr, peer, error)
            else:
                self._log.warning("site %s: %s dropped: %s", self._site_name,
                                  message.kind.name, error)

    def on_tick(self, now: float) -> None:
        if now >= self._next_expiry:
            self._next_expiry = now + 0.05
            self._asks.expire(now)
        if now >= self._next_backlog_check:
            self._next_backlog_check = now + 1.0
            self._inbound.settle()
            backlog.check(self._site_name, self._registry.backlogs(),
                          self._options.backlog_warning)
            self._log.flush(now)

    def _notify(self, event: PeerUp | PeerDown) -> None:
        for ref in self._watchers.live():
            try:
                ref.tell(event)
            except pykka.ActorDeadError:
                pass

    # -- replies (from actor threads, through RemoteReply) ---------------------------

    def send_reply(self, peer: str, corr: int, address: str, value: Any) -> None:
        """Answer the ask ``corr`` of ``peer`` with ``value`` (a failure if not encodable)."""
        try:
            header = codec.encode(Kind.REPLY, sender=address, corr=corr, body=value)
        except CodecError as err:
            self.send_failure(peer, corr, address, "CodecError", str(err))
            return
        self._send_answer(peer, header)

    def send_failure(self, peer: str, corr: int, address: str, kind: str, text: str,
                     by_actor: bool = False) -> None:
        """Tell ``peer`` its ask ``corr`` failed with the error ``kind``.

        ``by_actor``: the answering actor raised it (the asker gets an ActorError naming
        ``kind``); otherwise the runtime did, and ``kind`` names an ``actors.errors``
        class the asker raises as is.
        """
        body = [kind, text[:4000], by_actor]
        header = codec.encode(Kind.FAIL, sender=address, corr=corr, body=body)
        self._send_answer(peer, header)


def _failure(header: Header) -> ActorsError:
    """The error a FAIL ``[kind, text, by_actor]`` describes, as raised where the caller waits."""
    body = header.body
    if (isinstance(body, list) and len(body) == 3 and isinstance(body[0], str)
            and isinstance(body[1], str) and isinstance(body[2], bool)):
        kind, text, by_actor = body
        if by_actor:
            return ActorError(kind, text, header.sender)
        return error_from_wire(kind, text, header.sender)
    return error_from_wire("ActorError", f"malformed failure: {body!r}"[:200], header.sender)
