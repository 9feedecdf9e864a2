"""Which sites a site can reach, and through which of its peers: a distance-vector table.

Pure rules, no sockets or clocks: the I/O thread feeds it what happened (a peer came up
or went down, a peer announced what it reaches, the app named a route) and it answers
with what changed (sites that became reachable or unreachable through routes) and what
to announce to each peer.

Each site announces to each linked peer the sites it reaches, with their hop counts:
its own direct peers at 1 hop, routed sites at their count + 1, never what it learned
from that very peer (split horizon, so two sites never route a site through each other)
and never past :data:`MAX_HOPS`. A site reaches another through the peer that announced
the fewest hops (ties broken by name, so every site picks alike); a route the app named
(:meth:`Routes.route_named`) wins over learned ones. Counting to infinity is cut by the
hop bound: a withdrawn route disappears within ``MAX_HOPS`` rounds of announcements.

A table never holds more than ``max_sites`` destinations: a peer announcing more is
truncated (the nearest kept), so no peer can make a site hold unbounded routes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_HOPS = 4


@dataclass(frozen=True, slots=True)
class Reachable:
    """``site`` can be reached now, through ``via`` (a linked peer), ``hops`` away."""

    site: str
    via: str
    hops: int


@dataclass(frozen=True, slots=True)
class Unreachable:
    """``site`` can no longer be reached through any route; ``reason`` says why."""

    site: str
    reason: str


@dataclass(frozen=True, slots=True)
class Announce:
    """Tell ``peer`` the sites this site reaches: ``{site: hops}``."""

    peer: str
    sites: dict[str, int]


Change = Reachable | Unreachable | Announce


@dataclass(slots=True)
class _Peer:
    reaches: dict[str, int] = field(default_factory=dict)   # what it announced
    announced: dict[str, int] | None = None                   # what we last told it


class Routes:
    """One site's routes to the sites it is not linked to.

    Args:
        me: this site's name (never a destination).
        max_sites: the most destinations one table holds.
    """

    def __init__(self, me: str, max_sites: int = 1024) -> None:
        self.me = me
        self.max_sites = max_sites
        self._peers: dict[str, _Peer] = {}            # linked peers, up now
        self._named: dict[str, str] = {}              # site -> via, the app's own routes
        self._best: dict[str, tuple[str, int]] = {}   # routed site -> (via, hops)

    # -- what happened

    def peer_up(self, peer: str) -> list[Change]:
        """A direct link to ``peer`` is up: it is no longer a routed site."""
        if peer == self.me or peer in self._peers:
            return []
        self._peers[peer] = _Peer()
        return self._recompute(f"{peer} is linked directly")

    def peer_down(self, peer: str, reason: str) -> list[Change]:
        """The direct link to ``peer`` went down: routes through it go with it."""
        if self._peers.pop(peer, None) is None:
            return []
        return self._recompute(f"relay {peer} lost: {reason}")

    def announced(self, peer: str, sites: object) -> list[Change]:
        """``peer`` announced the sites it reaches (``{site: hops}``; malformed is ignored)."""
        entry = self._peers.get(peer)
        if entry is None:
            return []
        entry.reaches = self._clean(sites)
        return self._recompute(f"{peer} withdrew its route")

    def route_named(self, site: str, via: str) -> list[Change]:
        """The app routes ``site`` through its peer ``via`` (whatever was announced)."""
        if site == self.me or site == via:
            return []
        self._named[site] = via
        return self._recompute("")

    # -- what we know

    def via(self, site: str) -> str | None:
        """The linked peer to send a message for ``site`` to, or None if there is none."""
        best = self._best.get(site)
        return best[0] if best is not None else None

    def hops(self, site: str) -> int | None:
        """How far ``site`` is through its route (None: no route)."""
        best = self._best.get(site)
        return best[1] if best is not None else None

    def vouches(self, peer: str, origin: str) -> bool:
        """Whether ``peer`` may bring us messages from ``origin``: it is our route to it
        (a reverse-path check, so a peer cannot claim an origin it does not lead to)."""
        return self.via(origin) == peer

    def routed(self) -> dict[str, str]:
        """Every routed site and the peer it goes through."""
        return {site: via for site, (via, _hops) in self._best.items()}

    # -- internals

    def _clean(self, sites: object) -> dict[str, int]:
        if not isinstance(sites, dict):
            return {}
        good = [(hops, site) for site, hops in sites.items()
                if isinstance(site, str) and type(hops) is int and 1 <= hops < MAX_HOPS
                and site != self.me]
        good.sort()
        return {site: hops for hops, site in good[: self.max_sites]}

    def _candidates(self) -> dict[str, tuple[str, int]]:
        best: dict[str, tuple[str, int]] = {}
        for peer in sorted(self._peers):
            for site, hops in self._peers[peer].reaches.items():
                if site in self._peers or site == self.me:
                    continue
                known = best.get(site)
                if known is None or hops + 1 < known[1]:
                    best[site] = (peer, hops + 1)
        for site, via in self._named.items():
            if via in self._peers and site not in self._peers:
                best[site] = (via, best[site][1] if site in best else 2)
        kept = sorted(best.items(), key=lambda item: (item[1][1], item[0]))[: self.max_sites]
        return dict(kept)

    def _recompute(self, reason: str) -> list[Change]:
        old, self._best = self._best, self._candidates()
        changes: list[Change] = []
        for site in sorted(old.keys() - self._best.keys()):
            if site not in self._peers:
                changes.append(Unreachable(site, reason or "route withdrawn"))
        for site, (via, hops) in sorted(self._best.items()):
            if old.get(site, ("", 0))[0] != via:
                changes.append(Reachable(site, via, hops))
        return changes + self._announcements()

    def _announcements(self) -> list[Change]:
        out: list[Change] = []
        for peer in sorted(self._peers):
            table = {site: 1 for site in self._peers if site != peer}
            for site, (via, hops) in self._best.items():
                if via != peer and hops < MAX_HOPS:
                    table[site] = hops
            entry = self._peers[peer]
            if entry.announced != table:
                entry.announced = table
                out.append(Announce(peer, table))
        return out

