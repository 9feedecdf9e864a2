"""Which sites a site can reach, and through which of its peers: a distance-vector table.

Pure rules, no sockets or clocks: the I/O thread feeds it what happened (a peer came up
or went down, a peer announced what it reaches, the app named a route) and it answers
with what changed (sites that became reachable or unreachable through routes) and what
to announce to each peer.

Each site announces to each linked peer the sites it reaches, with their hop counts:
its own direct peers at 1 hop, routed sites at their count + 1, never what it learned
from that very peer (split horizon, so two sites never route a site through each other)
and never past :data:`MAX_HOPS`. A site reaches another through the peer that announced
the fewest hops; on a tie it keeps the route it uses (a message stream does not change
paths, and so order, for nothing), else takes the peer first by name. A route the app
named (:meth:`Routes.route_named`) wins over learned ones while its peer announces the
site (so a named route never keeps a vanished site alive). Counting to infinity is cut
by the hop bound: a withdrawn route disappears within ``MAX_HOPS`` rounds of
announcements. An announcement also says why each site it no longer carries went away
(``"server lost c2: connection lost"``), so a site two hops off learns the cause, not
only that the route is gone.

A table never holds more than ``max_sites`` destinations, nor more than ``max_entries``
announced entries from all peers together: a peer announcing more is truncated (the
nearest kept), so no peer can make a site hold unbounded routes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_HOPS = 4
#: Longest reason kept from a peer's announcement.
MAX_REASON = 300


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
    """Tell ``peer`` the sites this site reaches (``{site: hops}``), and why each site
    told before and no longer in ``sites`` went away, where that is known."""

    peer: str
    sites: dict[str, int]
    withdrawn: dict[str, str] = field(default_factory=dict)


Change = Reachable | Unreachable | Announce


@dataclass(slots=True)
class _Peer:
    reaches: dict[str, int] = field(default_factory=dict)   # what it announced
    announced: dict[str, int] = field(default_factory=dict)  # what we last told it
    # (nothing told yet is as good as an empty table: a peer that reaches nothing through
    # us hears nothing, so a site with one peer sends no announcements at all)


class Routes:
    """One site's routes to the sites it is not linked to.

    Args:
        me: this site's name (never a destination).
        max_sites: the most destinations one table holds, and one peer may announce.
        max_entries: the most announced entries kept from all peers together.
        relays: whether this site forwards for others; one that does not announces
            nothing, so no peer routes through it.
    """

    def __init__(self, me: str, max_sites: int = 1024, max_entries: int = 16384,
                 relays: bool = True) -> None:
        self.me = me
        self.max_sites = max_sites
        self.max_entries = max_entries
        self.relays = relays
        self._peers: dict[str, _Peer] = {}            # linked peers, up now
        self._named: dict[str, str] = {}              # site -> via, the app's own routes
        self._best: dict[str, tuple[str, int]] = {}   # routed site -> (via, hops)
        self._why: dict[str, str] = {}                # why sites left the table, this change

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
        self._why[peer] = f"{self.me} lost {peer}: {reason}"
        return self._recompute(f"relay {peer} lost: {reason}")

    def announced(self, peer: str, sites: object, withdrawn: object = None) -> list[Change]:
        """``peer`` announced the sites it reaches (``{site: hops}``) and why those it no
        longer reaches went (``{site: reason}``); malformed parts are ignored."""
        entry = self._peers.get(peer)
        if entry is None:
            return []
        entry.reaches = {}
        room = self.max_entries - sum(len(other.reaches) for other in self._peers.values())
        entry.reaches = self._clean(sites, max(0, min(self.max_sites, room)))
        if isinstance(withdrawn, dict):
            for site, why in withdrawn.items():
                if (isinstance(site, str) and isinstance(why, str)
                        and self._best.get(site, ("", 0))[0] == peer):
                    self._why[site] = why[:MAX_REASON]
        return self._recompute(f"{peer} withdrew its route")

    def route_named(self, site: str, via: str | None) -> list[Change]:
        """The app routes ``site`` through its peer ``via`` (whatever was announced);
        ``via`` None drops the app's route to ``site``."""
        if site == self.me or site == via:
            return []
        if via is None:
            if self._named.pop(site, None) is None:
                return []
        else:
            self._named[site] = via
        return self._recompute("the app dropped its route")

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
        """Whether ``peer`` may bring us messages from ``origin``.

        A site we are linked to speaks only over its own link; any other comes through
        a peer that leads to it: our route to it, or a peer that announced it (a loose
        reverse-path check: with equal-cost paths the two ends of a route may pick
        different relays, and the answers must still pass). So a peer cannot claim an
        origin it does not claim to reach, nor one we are linked to.
        """
        if origin in self._peers or origin == self.me:
            return False
        if self.via(origin) == peer:
            return True
        entry = self._peers.get(peer)
        return entry is not None and origin in entry.reaches

    def routed(self) -> dict[str, str]:
        """Every routed site and the peer it goes through."""
        return {site: via for site, (via, _hops) in self._best.items()}

    # -- internals

    def _clean(self, sites: object, most: int) -> dict[str, int]:
        if not isinstance(sites, dict):
            return {}
        good = [(hops, site) for site, hops in sites.items()
                if _site_name(site) and type(hops) is int and 1 <= hops < MAX_HOPS
                and site != self.me]
        good.sort()
        return {site: hops for hops, site in good[:most]}

    def _candidates(self) -> dict[str, tuple[str, int]]:
        offers: dict[str, list[tuple[int, str]]] = {}
        for peer, entry in self._peers.items():
            for site, hops in entry.reaches.items():
                if site not in self._peers and site != self.me:
                    offers.setdefault(site, []).append((hops + 1, peer))
        best: dict[str, tuple[str, int]] = {}
        for site, options in offers.items():
            hops = min(options)[0]
            old = self._best.get(site)
            if old is not None and (hops, old[0]) in options:   # a tie keeps the route in use
                best[site] = (old[0], hops)
            else:
                best[site] = (min(p for h, p in options if h == hops), hops)
        for site, via in self._named.items():
            offered = self._peers[via].reaches.get(site) if via in self._peers else None
            if offered is not None and site not in self._peers:
                best[site] = (via, offered + 1)
        kept = sorted(best.items(), key=lambda item: (item[1][1], item[0]))[: self.max_sites]
        return dict(kept)

    def _recompute(self, reason: str) -> list[Change]:
        old, self._best = self._best, self._candidates()
        changes: list[Change] = []
        for site in sorted(old.keys() - self._best.keys()):
            if site not in self._peers:
                why = self._why.setdefault(site, reason)
                changes.append(Unreachable(site, why))
        for site, (via, hops) in sorted(self._best.items()):
            if old.get(site, ("", 0))[0] != via:
                changes.append(Reachable(site, via, hops))
        changes += self._announcements()
        self._why = {}
        return changes

    def _announcements(self) -> list[Change]:
        if not self.relays:
            return []
        out: list[Change] = []
        for peer in sorted(self._peers):
            table = {site: 1 for site in self._peers if site != peer}
            for site, (via, hops) in self._best.items():
                if via != peer and hops < MAX_HOPS:
                    table[site] = hops
            entry = self._peers[peer]
            if entry.announced != table:
                gone = entry.announced.keys() - table.keys()
                withdrawn = {site: self._why[site] for site in gone if site in self._why}
                entry.announced = table
                out.append(Announce(peer, table, withdrawn))
        return out


def _site_name(name: object) -> bool:
    """Whether ``name`` could be a site's name (``actors.addresses.valid_site_name``)."""
    return isinstance(name, str) and 0 < len(name) <= 200 and "/" not in name and "\0" not in name
