"""What a site knows of its peers, kept for the threads that send and wait.

The I/O thread learns that a peer came up, was lost, or refused our link, and which
sites it reaches through a relay (routed sites: the same states, with the linked peer
they go through); app and actor threads read that before every send (one dict lookup
while the peer is up) and wait on it in ``Site.wait_for``. A state is a kind and the
reason behind it, so nothing parses strings. The actors that watch peers are kept here too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, NamedTuple

import pykka

from actors.errors import PeerLost, PeerRefused, UnknownSite

CONNECTING, UP, CONGESTED, LOST, REFUSED = "connecting", "up", "congested", "lost", "refused"

#: Shared state tuples, so "is this peer up" is an identity test.
_CONNECTING: tuple[str, str] = (CONNECTING, "")
_UP: tuple[str, str] = (UP, "")
#: Up, but too much waits to go to it: senders to it wait (``actors.io.outbound``).
_CONGESTED: tuple[str, str] = (CONGESTED, "")
_LIVE = (UP, CONGESTED)


class PeerState(NamedTuple):
    """What a site knows of another: ``kind`` (connecting, up, congested, lost or
    refused), the reason behind it ("" when there is none; while connecting, what the
    last attempt met), and ``via``, the linked peer a routed site is reached through
    ("" for a site we are linked to)."""

    kind: str
    reason: str = ""
    via: str = ""


class PeerStates:
    """Each peer's state; the I/O thread writes it, any thread reads or waits on it."""

    def __init__(self, site_name: str, names: Iterable[str]) -> None:
        self._site_name = site_name
        self._states: dict[str, tuple[str, str]] = {name: _CONNECTING for name in names}
        self._via: dict[str, str] = {}  # routed site -> the linked peer it goes through
        self._changed = threading.Condition()

    def connecting(self, name: str) -> None:
        """Know ``name`` as a peer being connected to (a known state stays)."""
        self._states.setdefault(name, _CONNECTING)

    def still_connecting(self, name: str, reason: str) -> None:
        """An attempt to link to ``name`` failed for ``reason``; it goes on (a peer
        being connected to only: one up, lost or refused keeps its state)."""
        with self._changed:
            state = self._states.get(name)
            if state is not None and state[0] == CONNECTING and state[1] != reason:
                self._states[name] = (CONNECTING, reason) if reason else _CONNECTING
                self._changed.notify_all()

    def set_up(self, name: str, via: str = "") -> None:
        """``name`` said hello (or welcomed ours), or is reachable through the linked
        peer ``via``: messages to it go out."""
        with self._changed:
            if via:
                self._via[name] = via
            else:
                self._via.pop(name, None)
            congested = bool(via) and self._states.get(via) is _CONGESTED
            self._states[name] = _CONGESTED if congested else _UP
            self._changed.notify_all()

    def set_down(self, name: str, reason: str, refused: bool) -> None:
        """``name`` went away (``refused``: it refused our link), for ``reason``."""
        with self._changed:
            self._via.pop(name, None)
            self._states[name] = (REFUSED if refused else LOST, reason)
            self._changed.notify_all()

    def set_congested(self, name: str, congested: bool) -> None:
        """Senders to ``name`` (and to the sites routed through it) must wait
        (``congested``) or may go on; up sites only."""
        with self._changed:
            for site in [name, *(s for s, via in self._via.items() if via == name)]:
                if self._states.get(site) in (_UP, _CONGESTED):
                    self._states[site] = _CONGESTED if congested else _UP
            self._changed.notify_all()

    def forget(self, name: str) -> None:
        """Know ``name`` no more (it was down long enough, and we do not dial it)."""
        with self._changed:
            self._states.pop(name, None)
            self._via.pop(name, None)
            self._changed.notify_all()

    def is_up(self, name: str) -> bool:
        """Whether ``name`` is up now (one lookup: the send path asks it every time)."""
        return self._states.get(name) is _UP

    def check(self, name: str, wait: float = 1.0) -> bool:
        """Raise why a message for ``name`` cannot go out; return whether it must wait.

        A congested peer is waited on for up to ``wait`` seconds; True if it still is.

        Raises:
            UnknownSite: no such peer was ever connected or heard from.
            PeerRefused: the peer refused our link.
            PeerLost: the peer went away.
        """
        state = self._states.get(name)
        if state is _CONGESTED:
            with self._changed:
                self._changed.wait_for(lambda: self._states.get(name) is not _CONGESTED, wait)
                state = self._states.get(name)
        if state is None:
            raise UnknownSite(f"site {self._site_name} knows no site named {name!r} (none is "
                              "linked to it, nor reachable through a relay)")
        kind, reason = state
        if kind == REFUSED:
            raise PeerRefused(f"{name} refused: {reason}")
        if kind == LOST:
            raise PeerLost(f"{name} is lost: {reason}")
        return state is _CONGESTED

    def wait_up(self, name: str, timeout: float) -> bool:
        """Wait until ``name`` is up (True) or ``timeout`` passed (False).

        Raises:
            PeerRefused: it refused our link, before or while we waited.
        """
        def settled() -> bool:
            state = self._states.get(name)
            return state is not None and state[0] in (UP, CONGESTED, REFUSED)

        with self._changed:
            self._changed.wait_for(settled, timeout)
            state = self._states.get(name)  # as it was when the wait ended
        if state is not None and state[0] == REFUSED:
            raise PeerRefused(f"{name} refused: {state[1]}")
        return state is not None and state[0] in _LIVE

    def up(self) -> list[str]:
        """Names of the peers linked and up now, sorted (routed sites are not)."""
        via = self._via
        return sorted(name for name, state in list(self._states.items())
                      if state[0] in _LIVE and name not in via)

    def routes(self) -> dict[str, str]:
        """Every site reachable now through a relay, and the linked peer it goes through."""
        return dict(self._via)

    def state(self, name: str) -> PeerState | None:
        """What is known of ``name`` now (None: nothing)."""
        with self._changed:
            state = self._states.get(name)
            via = self._via.get(name, "")
        return PeerState(state[0], state[1], via) if state is not None else None


class PeerWatchers:
    """The actors to tell when a peer comes or goes, in the order they asked.

    Actor threads add and remove, the I/O thread reads and forgets the stopped: each
    change is one dict step, so none loses another's.
    """

    def __init__(self) -> None:
        self._refs: dict[pykka.ActorRef[Any], None] = {}

    def add(self, ref: pykka.ActorRef[Any]) -> None:
        """Tell ``ref`` of peer changes from now on (forgetting stopped watchers first)."""
        self.live()
        self._refs[ref] = None

    def remove(self, ref: pykka.ActorRef[Any]) -> None:
        """Stop telling ``ref``."""
        self._refs.pop(ref, None)

    def live(self) -> list[pykka.ActorRef[Any]]:
        """The watchers still running; the stopped are forgotten."""
        alive = []
        for ref in list(self._refs):
            if ref.is_alive():
                alive.append(ref)
            else:
                self._refs.pop(ref, None)
        return alive

    def __len__(self) -> int:
        return len(self._refs)
