"""Routes on the I/O thread: sites reached through the sites they share, and relaying.

The pure table of ``actors.routes`` learns from link events and from each peer's
announcement (ROUTES) which sites are reachable through which linked peer; a
:class:`Relay` feeds it and carries out what it answers: announcements to peers, and
routed sites coming and going, told to the site (``RouteHandler``) as peers are.

A message for a routed site leaves as ROUTED ``[dest, origin, hops, inner]``
(``actors.codec``) to the next hop; each relay decodes only that wrapper and hands the
payload frames on as the zmq.Frame objects it received (no copy). Origins:

- the first hop takes an origin only from the peer it authenticated as that site (a
  connection speaks for one site, ``actors.io.links``), and checks that the inner
  header's sender is one of that site's addresses, as for a direct message;
- every later hop, and the far end, take an origin from a peer only when that peer
  leads to it (``Routes.vouches``), and never one they are linked to themselves;
- with CURVE, an origin must also be a site in this site's allow-list, and the far
  end checks the inner sender again.

Bounds: a relay holds no more of a stream than what waits toward the next hop, and
that obeys the per-peer and site backlog bounds of ``actors.io.outbound``: a routed
message that would pass them, or has nowhere to go (no route, the hop bound, a site
that does not relay, an untrusted origin), is refused. An ask then fails at once at
its origin: the relay answers it with the runtime's error (MailboxFull, UnknownSite,
PeerRefused) on behalf of the site it could not reach, naming itself in the text; a
tell is dropped with a log line. End-to-end flow control (a window of acked chunks)
keeps streams far below these bounds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import msgpack
import zmq

from actors import codec
from actors.codec import APP_KINDS, Header, Kind
from actors.errors import CodecError
from actors.io.peers import Peers
from actors.options import SiteOptions
from actors.ratelog import LogLimit
from actors.routes import MAX_HOPS, MAX_REASON, Announce, Change, Reachable, Routes, Unreachable

log = logging.getLogger(__name__)

_ROUTED, _ROUTES, _ASK = Kind.ROUTED, Kind.ROUTES, Kind.ASK


class RouteHandler(Protocol):
    """What the relay tells the site (its ``actors.dispatch.Dispatcher``); I/O thread."""

    def on_message(self, peer: str, header: Header, payload: list[zmq.Frame]) -> None: ...

    def on_peer_up(self, peer: str, via: str = "") -> None: ...

    def on_peer_down(self, peer: str, reason: str, refused: bool) -> None: ...

    def on_route_moved(self, site: str, via: str) -> None: ...


class Sender(Protocol):
    """How the relay sends to a linked peer (``actors.io.outbound.Outbound``)."""

    def send(self, name: str, frames: Sequence[Any]) -> None: ...


class Relay:
    """A site's routes and relaying, on its I/O thread; see the module docstring."""

    def __init__(self, site_name: str, options: SiteOptions, peers: Peers,
                 handler: RouteHandler, out: Sender) -> None:
        self.site_name = site_name
        self._options = options
        self._peers = peers
        self._handler = handler
        self._out = out
        self.routes = Routes(site_name, options.max_routes,
                             max_entries=16 * options.max_routes, relays=options.relay)
        self._reached: dict[str, str] = {}      # routed sites the site was told of -> via
        self._announce: dict[str, Announce] = {}  # announcements to send, by peer
        self._max_map = options.max_peers + options.max_routes
        self._log = LogLimit(log)

    # -- link events and the app's routes --------------------------------------------

    def peer_up(self, peer: str) -> None:
        """A direct link to ``peer`` came up."""
        self._reached.pop(peer, None)  # the site now knows it as a linked peer
        self._apply(self.routes.peer_up(peer))

    def peer_down(self, peer: str, reason: str) -> None:
        """The direct link to ``peer`` went down (or it refused us)."""
        self._announce.pop(peer, None)
        self._apply(self.routes.peer_down(peer, reason), lost=(peer, reason))

    def route_named(self, site: str, via: str | None) -> None:
        """The app routes ``site`` through its peer ``via`` (None: its route is dropped)."""
        self._apply(self.routes.route_named(site, via))

    def via(self, dest: str) -> str | None:
        """The linked peer a message for ``dest`` goes to, if ``dest`` is routed."""
        return self.routes.via(dest)

    def wrap(self, dest: str, frames: Sequence[Any]) -> list[Any]:
        """A message of ours for the routed site ``dest``, as it leaves for the next hop."""
        inner = frames[0] if type(frames[0]) is bytes else bytes(frames[0])
        return [codec.encode(_ROUTED, sender=self.site_name,
                             body=[dest, self.site_name, 1, inner]), *frames[1:]]

    def _apply(self, changes: list[Change], lost: tuple[str, str] | None = None) -> None:
        for change in changes:
            if isinstance(change, Announce):
                self._queue(change)
            elif isinstance(change, Reachable):
                self._reachable(change, lost)
            elif isinstance(change, Unreachable) and change.site in self._reached:
                del self._reached[change.site]
                self._handler.on_peer_down(change.site, change.reason, False)

    def _reachable(self, change: Reachable, lost: tuple[str, str] | None) -> None:
        site, via = change.site, change.via
        curve = self._options.curve
        if curve is not None and curve.key_of(site) is None:
            return  # a site we do not trust: never ours to send to, nor to hear from
        old = self._reached.get(site)
        self._reached[site] = via
        if old is None:
            self._handler.on_peer_up(site, via)
        elif lost is not None and old == lost[0]:
            # What went through the lost relay is lost: its asks fail, its streams end,
            # as for a link that dropped; then the site is back through ``via``.
            self._handler.on_peer_down(site, f"relay {lost[0]} lost: {lost[1]}", False)
            self._handler.on_peer_up(site, via)
        else:
            self._handler.on_route_moved(site, via)

    # -- announcements -----------------------------------------------------------------

    def _queue(self, announce: Announce) -> None:
        earlier = self._announce.get(announce.peer)
        if earlier is not None and earlier.withdrawn:  # a reason not yet told stays
            withdrawn = {**earlier.withdrawn, **announce.withdrawn}
            announce = Announce(announce.peer, announce.sites,
                                {s: w for s, w in withdrawn.items() if s not in announce.sites})
        self._announce[announce.peer] = announce

    @property
    def pending(self) -> bool:
        """Whether announcements wait to be sent."""
        return bool(self._announce)

    def flush(self, only: str | None = None) -> None:
        """Send the announcements that wait (to ``only``, if given).

        The I/O thread calls this once a round, after it has read what came in: a peer
        that just said hello has had its welcome by then.
        """
        peers = [only] if only is not None else list(self._announce)
        for name in peers:
            announce = self._announce.pop(name, None)
            peer = self._peers.get(name)
            if announce is None or peer is None or not peer.up:
                continue
            withdrawn = {site: why[:MAX_REASON] for site, why in announce.withdrawn.items()}
            table = msgpack.packb([announce.sites, withdrawn], use_bin_type=True)
            self._out.send(name, [codec.encode(_ROUTES, sender=self.site_name), table])

    def on_announced(self, peer: str, header: Header, payload: list[zmq.Frame]) -> None:
        """``peer`` said which sites it reaches (ROUTES)."""
        try:
            sites, withdrawn = msgpack.unpackb(
                payload[0].buffer if payload else b"", max_map_len=self._max_map,
                max_array_len=2, max_str_len=max(MAX_REASON, 256), max_bin_len=0,
                max_ext_len=0)
        except (ValueError, TypeError, msgpack.UnpackException) as err:
            self._log.warning("site %s: bad announcement from %s dropped: %s",
                              self.site_name, peer, err)
            return
        self._apply(self.routes.announced(peer, sites, withdrawn))

    # -- routed messages --------------------------------------------------------------

    def on_routed(self, peer: str, header: Header, payload: list[zmq.Frame]) -> None:
        """A ROUTED message from the linked ``peer``: deliver it here, or pass it on."""
        routed = codec.routed(header.body)
        if routed is None:
            self._log.warning("site %s: malformed routed message from %s dropped",
                              self.site_name, peer)
            return
        dest, origin, hops, inner = routed
        if origin != peer and not self.routes.vouches(peer, origin):
            self._log.warning("site %s: %s brought a message from %r, a site it does not lead "
                              "to; dropped", self.site_name, peer, origin)
            return
        curve = self._options.curve
        if curve is not None and curve.key_of(origin) is None:
            self._bounce(routed, None, "PeerRefused", f"site {self.site_name} does not trust "
                         f"site {origin!r} (its key is not in the allow-list)")
            return
        first = origin == peer
        if dest == self.site_name or first:
            decoded = self._inner(peer, routed)
            if decoded is None:
                return
            if dest == self.site_name:
                self._handler.on_message(origin, decoded, payload)
                return
        else:
            decoded = None
        self._forward(routed, decoded, payload)

    def _inner(self, peer: str, routed: codec.Routed) -> Header | None:
        """The inner header, if it is one a site may carry from ``routed.origin``."""
        try:
            inner = codec.decode(routed.inner)
        except CodecError as err:
            self._log.warning("site %s: bad routed message from %s via %s: %s",
                              self.site_name, routed.origin, peer, err)
            return None
        sender = inner.sender
        if inner.kind not in APP_KINDS or not (
                sender == routed.origin or sender.startswith(routed.origin + "/")):
            self._log.warning("site %s: a routed %s from %r claims sender %r; dropped",
                              self.site_name, inner.kind.name, routed.origin, sender)
            return None
        return inner

    def _forward(self, routed: codec.Routed, decoded: Header | None,
                 payload: list[zmq.Frame]) -> None:
        dest = routed.dest
        if not self._options.relay:
            self._bounce(routed, decoded, "UnknownSite", f"site {self.site_name} does not "
                         f"relay: no route to {dest!r} through it")
            return
        if routed.hops >= MAX_HOPS:
            self._bounce(routed, decoded, "UnknownSite", f"relay {self.site_name}: {dest!r} "
                         f"is not reached within {MAX_HOPS} hops")
            return
        target = self._peers.get(dest)
        name = dest if target is not None and target.up else self.routes.via(dest)
        hop = self._peers.get(name) if name is not None else None
        if hop is None or name is None or not hop.up:
            self._bounce(routed, decoded, "UnknownSite",
                         f"relay {self.site_name} has no route to {dest!r}")
            return
        options = self._options
        if (hop.pending_bytes > options.max_peer_pending_bytes
                or self._peers.pending_bytes > options.max_pending_bytes):
            self._bounce(routed, decoded, "MailboxFull", f"relay {self.site_name} holds "
                         f"{hop.pending_bytes >> 20} MiB waiting to go to {name} already: send "
                         "with a window of acks")
            return
        if name in self._announce:  # the next hop learns of the origin before its message
            self.flush(name)
        body = [dest, routed.origin, routed.hops + 1, routed.inner]
        self._out.send(name, [codec.encode(_ROUTED, sender=self.site_name, body=body),
                              *payload])

    def _bounce(self, routed: codec.Routed, decoded: Header | None, kind: str,
                text: str) -> None:
        """Fail a routed ask at its origin with the runtime error ``kind`` (on behalf of
        the site it was for); drop anything else, with a log line."""
        if decoded is None:
            try:
                decoded = codec.decode(routed.inner)
            except CodecError:
                decoded = None
        if decoded is None or decoded.kind is not _ASK:
            self._log.warning("site %s: routed %s from %s to %s dropped: %s", self.site_name,
                              decoded.kind.name if decoded else "message", routed.origin,
                              routed.dest, text)
            return
        back = self._peers.get(routed.origin)
        name = routed.origin if back is not None and back.up else self.routes.via(routed.origin)
        if name is None:
            return
        fail = codec.encode(Kind.FAIL, sender=routed.dest, corr=decoded.corr,
                            body=[kind, text[:4000], False])
        body = [routed.origin, routed.dest, 1, fail]
        self._out.send(name, [codec.encode(_ROUTED, sender=self.site_name, body=body)])
