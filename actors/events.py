"""Peer events told to the actors that watch a site's peers (``Site.watch_peers``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PeerUp:
    """The peer site connected and said hello (again), or became reachable through
    the linked peer ``via`` (a relay; "" for a direct link)."""

    name: str
    via: str = ""


@dataclass(frozen=True, slots=True)
class PeerDown:
    """The peer site stopped, died or became unreachable (a routed site: also when
    its relay was lost, ``reason`` then naming it: "relay server lost: ...").

    Pending asks to it have already failed with ``PeerLost`` (``PeerRefused`` when it
    refused our link; ``reason`` then starts with "refused: ") when this arrives.
    """

    name: str
    reason: str
