"""Pull with peers on the wire: one decode that refuses a malformed message.

As :mod:`zfs.protocol.swarm.codec` does for swarm push: a message is a msgpack array,
its kind first (``swarm-join``, ``swarm-want``, ...), then its fields in order; a
piece's bytes travel as the message's payload frame. Every list a peer sends is
bounded, so a hostile message costs a bounded amount to read, and a message of the
wrong shape is refused before any core sees it.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Callable

from zfs.protocol.errors import RemoteProtocolError
from zfs.protocol.fields import MAX_INT, count, flag, text
from zfs.protocol.swarm.codec import MAX_ENDPOINT
from zfs.protocol.swarm.wire import (
    Decline, Digest, Digests, Ended, Fetch, Get, GetDigest, GetDigests, Join, Leave, Piece,
    PullMessage, Rejoin, Wait, Want, Welcome)

MAX_TEXT = 4096            # characters of a name, key, reason or digest
MAX_REPORT = 4096          # entries of a Want's got or failed
MAX_PAGE = 65536           # digests in one page of the table


def _short_text(value: Any) -> str:
    return text(value, MAX_TEXT)


def _index(value: Any) -> int:
    """A chunk index, or -1 (a Decline of a request that named none)."""
    if type(value) is not int or not -1 <= value <= MAX_INT:
        raise RemoteProtocolError(f"expected a chunk index, not {value!r}"[:200])
    return value


def _endpoint(value: Any) -> str:
    if type(value) is not str or len(value) > MAX_ENDPOINT:
        raise RemoteProtocolError("expected an endpoint")
    return value


def _maybe_endpoint(value: Any) -> str | None:
    return None if value is None else _endpoint(value)


def _bounded(value: Any, most: int) -> list[Any]:
    if type(value) is not list or len(value) > most:
        raise RemoteProtocolError(f"expected a list of at most {most} entries")
    return value


def _indexes(value: Any) -> tuple[int, ...]:
    return tuple(count(item) for item in _bounded(value, MAX_REPORT))


def _failures(value: Any) -> tuple[tuple[int, str, str], ...]:
    out = []
    for entry in _bounded(value, MAX_REPORT):
        if type(entry) is not list or len(entry) != 3:
            raise RemoteProtocolError("a failure is [index, peer, why]")
        out.append((count(entry[0]), _short_text(entry[1]), _short_text(entry[2])))
    return tuple(out)


def _digests(value: Any) -> tuple[str, ...]:
    return tuple(_short_text(item) for item in _bounded(value, MAX_PAGE))


_Check = Callable[[Any], Any]

_KINDS: dict[str, tuple[type, tuple[_Check, ...]]] = {
    "swarm-join": (Join, (_short_text, count, _maybe_endpoint)),
    "swarm-welcome": (Welcome, (_short_text, _short_text, count, _short_text, count, count)),
    "swarm-want": (Want, (_short_text, _indexes, _failures)),
    "swarm-fetch": (Fetch, (_short_text, count, _short_text, _endpoint)),
    "swarm-wait": (Wait, (_short_text,)),
    "swarm-rejoin": (Rejoin, (_short_text,)),
    "swarm-get": (Get, (_short_text, count)),
    "swarm-piece": (Piece, (_short_text, count)),
    "swarm-decline": (Decline, (_short_text, _index, _short_text)),
    "swarm-get-digests": (GetDigests, (_short_text, count)),
    "swarm-digests": (Digests, (_short_text, count, _digests)),
    "swarm-get-digest": (GetDigest, (_short_text,)),
    "swarm-digest": (Digest, (_short_text, _short_text)),
    "swarm-leave": (Leave, (_short_text, flag, count, count, flag)),
    "swarm-ended": (Ended, (_short_text,)),
}
_LAYOUT: dict[type, tuple[str, tuple[str, ...]]] = {
    cls: (tag, tuple(f.name for f in fields(cls))) for tag, (cls, _) in _KINDS.items()}


def is_pull_swarm(body: Any) -> bool:
    """Whether ``body`` claims to be a message of pull with peers (decode may refuse it)."""
    return type(body) is list and bool(body) and body[0] in _KINDS


def decode(body: Any) -> PullMessage:
    """Read a message of pull with peers.

    Raises:
        RemoteProtocolError: not such a message (kind, field count or a field's type).
    """
    if not is_pull_swarm(body):
        raise RemoteProtocolError(f"not a message of pull with peers: {body!r}"[:200])
    cls, checks = _KINDS[body[0]]
    if len(body) != len(checks) + 1:
        raise RemoteProtocolError(f"{body[0]} has {len(body) - 1} fields, not {len(checks)}")
    return cls(*(check(value) for check, value in zip(checks, body[1:])))  # type: ignore[no-any-return]


def encode(message: PullMessage) -> list[Any]:
    """The wire body of ``message`` (msgpack-able; tuples go as lists)."""
    tag, names = _LAYOUT[type(message)]
    body: list[Any] = [tag]
    for name in names:
        value = getattr(message, name)
        if isinstance(value, tuple):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        body.append(value)
    return body
