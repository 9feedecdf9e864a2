"""Asks waiting for their answers, each resolved exactly once.

Callers add entries; the I/O thread resolves, fails and expires them. Whoever pops an
entry from the table first owns it and settles its future, so a late reply, a timeout
and a lost peer can race without settling a future twice.
"""

from __future__ import annotations

import itertools
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any

from actors.errors import ActorsError, AskTimeout


@dataclass(frozen=True, slots=True)
class _Ask:
    future: Future[Any]
    peer: str | None  # None for an ask to a local actor
    deadline: float
    address: str
    timeout: float


def settle(future: Future[Any], value: Any = None, error: BaseException | None = None) -> None:
    """Resolve a future unless something already did."""
    try:
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)
    except InvalidStateError:
        pass


class Asks:
    """The table of pending asks of one site, keyed by correlation id."""

    def __init__(self) -> None:
        self._entries: dict[int, _Ask] = {}
        self._ids = itertools.count(1)

    def add(self, future: Future[Any], peer: str | None, now: float, timeout: float,
            address: str) -> int:
        """Register an ask and return its correlation id."""
        corr = next(self._ids)
        self._entries[corr] = _Ask(future, peer, now + timeout, address, timeout)
        return corr

    def resolve(self, corr: int, peer: str, value: Any) -> None:
        """Settle an ask with its answer, if it is still pending and ``peer`` owns it."""
        ask = self._pop_from(corr, peer)
        if ask is not None:
            settle(ask.future, value)

    def fail(self, corr: int, peer: str | None, error: ActorsError) -> None:
        """Settle an ask with an error, if it is still pending and ``peer`` owns it."""
        ask = self._pop_from(corr, peer)
        if ask is not None:
            settle(ask.future, error=error)

    def discard(self, corr: int) -> None:
        """Forget an ask (its caller gave up waiting)."""
        self._entries.pop(corr, None)

    def fail_peer(self, peer: str, error: ActorsError) -> None:
        """Fail every ask sent to ``peer``."""
        for corr, ask in list(self._entries.items()):
            if ask.peer == peer and self._entries.pop(corr, None) is not None:
                settle(ask.future, error=error)

    def expire(self, now: float) -> None:
        """Fail asks past their deadline; forget local asks already answered."""
        for corr, ask in list(self._entries.items()):
            if ask.future.done():
                self._entries.pop(corr, None)
            elif now >= ask.deadline and self._entries.pop(corr, None) is not None:
                settle(ask.future, error=AskTimeout(
                    f"no answer from {ask.address} within {ask.timeout:g} s"))

    def fail_all(self, error: ActorsError) -> None:
        """Fail every pending ask (the site is stopping)."""
        for corr in list(self._entries):
            ask = self._entries.pop(corr, None)
            if ask is not None:
                settle(ask.future, error=error)

    def _pop_from(self, corr: int, peer: str | None) -> _Ask | None:
        ask = self._entries.get(corr)
        if ask is None or ask.peer != peer:
            return None
        return self._entries.pop(corr, None)
