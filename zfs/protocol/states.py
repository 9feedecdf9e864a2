"""One way to write a lifecycle: states in an enum, legal moves in a table beside them."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeVar

from zfs.protocol.errors import LocalProtocolError

S = TypeVar("S", bound=enum.Enum)

#: A lifecycle's legal moves: each state to the states it may go to next.
Transitions = Mapping[S, frozenset[S]]


def move(table: Transitions[S], current: S, new: S, what: str) -> S:
    """Return ``new`` if ``table`` allows ``current -> new``.

    Raises:
        LocalProtocolError: the move is not in the table (a bug in the core's caller).
    """
    if new not in table[current]:
        raise LocalProtocolError(f"{what} cannot go from {current.name} to {new.name}")
    return new
