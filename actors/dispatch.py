"""The site's side of its links: what the I/O thread tells it, and answers sent back.

The I/O thread (``actors.links``) calls a :class:`Dispatcher` for every message and
peer event: replies settle pending asks, tells and asks go to local actors (a read
batch at a time, ``actors.inbound``), peer changes update the site's peer states
and reach the actors that watch them. Answers to remote asks leave through
:meth:`Dispatcher.send_reply` and :meth:`Dispatcher.send_failure`, from any thread.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import pykka
import zmq

from actors import codec
from actors.codec import Header, Kind
from actors.errors import (ActorsError, CodecError, PeerLost, PeerRefused, SiteClosed,
                           UnknownSite, error_from_wire)
from actors.events import PeerDown, PeerUp
from actors.inbound import Inbound

if TYPE_CHECKING:
    from actors.site import Site

log = logging.getLogger(__name__)

# Module constants: reading an enum member off its class costs more, once per message.
_REPLY, _FAIL = Kind.REPLY, Kind.FAIL

#: The peer state of a connected peer (others are "connecting", "lost: ...", "refused: ...").
UP = "up"


class Dispatcher:
    """The :class:`~actors.links.LinkHandler` of a site; its ``on_*`` run on the I/O thread."""

    def __init__(self, site: Site) -> None:
        self._site = site
        self._inbound = Inbound(site, self)
        self._next_expiry = 0.0

    # -- called by the I/O thread (LinkHandler) --------------------------------------

    def on_message(self, peer: str, header: Header, payload: list[zmq.Frame]) -> None:
        kind = header.kind
        if kind is _REPLY:
            self._site._asks.resolve(header.corr, peer, header.body)
        elif kind is _FAIL:
            self._site._asks.fail(header.corr, peer, _failure(header))
        else:
            self._inbound.add(peer, header, payload)

    def on_batch_end(self) -> None:
        self._inbound.flush()

    def on_peer_up(self, peer: str) -> None:
        self._set_peer_state(peer, UP)
        self._notify(PeerUp(peer))

    def on_peer_down(self, peer: str, reason: str, refused: bool) -> None:
        self._set_peer_state(peer, f"{'refused' if refused else 'lost'}: {reason}")
        error = (PeerRefused if refused else PeerLost)(f"{peer}: {reason}")
        self._site._asks.fail_peer(peer, error)
        self._notify(PeerDown(peer, reason))

    def on_undeliverable(self, peer: str, header: bytes, reason: str) -> None:
        try:
            decoded = codec.decode(header)
        except CodecError:
            return
        if decoded.kind is Kind.ASK:
            error = UnknownSite if reason == "unknown site" else PeerLost
            self._site._asks.fail(decoded.corr, peer, error(f"{peer}: {reason}"))
        else:
            log.warning("site %s: %s to %s dropped: %s", self._site.name, decoded.kind.name,
                        peer, reason)

    def on_tick(self, now: float) -> None:
        if now >= self._next_expiry:
            self._next_expiry = now + 0.05
            self._site._asks.expire(now)

    def _set_peer_state(self, peer: str, state: str) -> None:
        site = self._site
        with site._peer_changed:
            site._peer_state[peer] = state
            site._peer_changed.notify_all()

    def _notify(self, event: PeerUp | PeerDown) -> None:
        for ref in self._site._live_watchers():
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
        self._send_header(peer, header)

    def send_failure(self, peer: str, corr: int, address: str, kind: str, text: str) -> None:
        """Tell ``peer`` its ask ``corr`` failed with the error ``kind``."""
        header = codec.encode(Kind.FAIL, sender=address, corr=corr, body=[kind, text[:4000]])
        self._send_header(peer, header)

    def _send_header(self, peer: str, header: bytes) -> None:
        site = self._site
        io = site._io
        if io is not None and threading.current_thread() is io:
            io.send(peer, [header])
            return
        try:
            site._hand_over(peer, header, ())
        except SiteClosed:
            log.info("site %s: answer to %s not sent: site stopped", site.name, peer)


def _failure(header: Header) -> ActorsError:
    body = header.body
    if isinstance(body, list) and len(body) == 2 and all(isinstance(b, str) for b in body):
        return error_from_wire(body[0], body[1], header.sender)
    return error_from_wire("ActorError", f"malformed failure: {body!r}"[:200], header.sender)
