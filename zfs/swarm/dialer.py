"""The links a swarm actor opens itself: a download with peers to the peers its owner
points it at, a swarm push's relay to its children.

Dialling never blocks the actor: :meth:`Dialer.dial` starts the link and returns;
what goes to that peer is held until its own link is up (before that it would take a
relayed route, where it can be lost or overtaken), then released in order. A peer not
linked within :data:`CONNECT_TIMEOUT` is given up: what was held for it is dropped and
the caller reports it unreachable (the owner then serves those chunks itself, or the
push goes the star way).
"""

from __future__ import annotations

import logging
from typing import Any

import actors

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0        # seconds a peer we dialled has to come up


class Dialer:
    """Peers of one download: dialled, linked, or given up."""

    def __init__(self, site: actors.Site) -> None:
        self._site = site
        self._dialled: dict[str, tuple[str, float]] = {}    # site -> (peer, when dialled)
        self._held: dict[str, list[tuple[str, Any]]] = {}  # site -> (address, message)
        self.unreachable: set[str] = set()                 # sites given up

    def dial(self, peer: str, endpoint: str, now: float) -> bool:
        """Link to ``peer`` (an actor address) at ``endpoint``; False if it cannot be."""
        site = peer.partition("/")[0]
        if site in self._site.peers() or site in self._dialled:
            return True
        if not endpoint.startswith("tcp://") or site == self._site.name:
            return False
        try:
            self._site.connect(site, endpoint, timeout=CONNECT_TIMEOUT)
        except ValueError as err:
            if "already connected" not in str(err):
                return False
        except Exception as err:  # noqa: BLE001 - any failure to dial is the same to us
            log.info("swarm: cannot dial %s at %s: %s", site, endpoint, err)
            return False
        self._dialled[site] = (peer, now)
        self._held[site] = []
        return True

    def hold(self, to: str, message: Any) -> bool:
        """Keep ``message`` (anything the caller sends later) for ``to`` if its site is
        dialled and not linked yet."""
        waiting = self._held.get(to.partition("/")[0])
        if waiting is None:
            return False
        waiting.append((to, message))
        return True

    def linked(self, site: str) -> list[tuple[str, Any]]:
        """``site`` came up: the messages held for it, to send now (none if not ours)."""
        if site not in self._dialled or site not in self._site.peers():
            return []
        del self._dialled[site]
        return self._held.pop(site, [])

    def check(self, now: float) -> tuple[list[tuple[str, Any]], list[str]]:
        """Messages released for peers now linked, and the peers given up (once each)."""
        released: list[tuple[str, Any]] = []
        given_up: list[str] = []
        linked = self._site.peers()
        for site, (peer, when) in list(self._dialled.items()):
            if site in linked:
                released += self.linked(site)
            elif now - when > CONNECT_TIMEOUT:
                del self._dialled[site]
                self._held.pop(site, None)
                self.unreachable.add(site)
                given_up.append(peer)
        return released, given_up
