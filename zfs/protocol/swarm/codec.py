"""The swarm push's messages on the wire: one decode that refuses a malformed peer message.

As :mod:`zfs.protocol.wire` for plain push: a message is a msgpack array, its kind
first, then its fields in order; a chunk's bytes travel as the message's payload frame.
Kinds start with ``swarm-``, so a swarm message sent to a plain receiver is refused as
unknown rather than misread.

An ``Open`` travels with what the shells need beside the core's fields, as an
:class:`Opening`: where each member of the subtree listens (so that a target can link
to its children itself), the site that started the push (``ReceivedFile.sender_site``)
and the app's context. ``Probe`` is the sender's question before a push: do you relay
swarm pushes, and where do you listen (the answer is the endpoint, or ``""``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Union

from zfs.protocol.errors import RemoteProtocolError
from zfs.protocol.fields import count, text
from zfs.protocol.swarm.opening import MAX_MEMBERS
from zfs.protocol.swarm.wire import Abort, Accept, Ack, Chunk, Done, End, Failed, Open

MAX_ENDPOINT = 1024        # characters of one endpoint ("tcp://host:port")


@dataclass(frozen=True, slots=True)
class Opening:
    """An ``Open`` as it travels: the core's message and the shells' extras.

    ``endpoints[i]`` is where ``open.members[i]`` listens (``""``: nowhere we know).
    """

    open: Open
    endpoints: tuple[str, ...]
    origin: str
    context: Any


@dataclass(frozen=True, slots=True)
class Probe:
    """The sender asks a target whether it relays swarm pushes and where it listens."""


Message = Union[Opening, Probe, Accept, Chunk, Ack, End, Done, Failed, Abort]


def _seconds(value: Any) -> float:
    if type(value) not in (int, float) or not 0 < value < math.inf:
        raise RemoteProtocolError(f"expected seconds above 0, not {value!r}"[:200])
    return float(value)


def _names(value: Any) -> tuple[str, ...]:
    if type(value) is not list or not 0 < len(value) <= MAX_MEMBERS:
        raise RemoteProtocolError("expected a list of 1 or more names")
    return tuple(text(item) for item in value)


_Check = Callable[[Any], Any]

_KINDS: dict[str, tuple[type, tuple[_Check, ...]]] = {
    "swarm-accept": (Accept, (text, count)),
    "swarm-chunk": (Chunk, (text, count)),
    "swarm-ack": (Ack, (text, count, count)),
    "swarm-end": (End, (text, count, text)),
    "swarm-done": (Done, (text, count)),
    "swarm-failed": (Failed, (text, text, text, text)),
    "swarm-abort": (Abort, (text, text)),
}
_LAYOUT: dict[type, tuple[str, tuple[str, ...]]] = {
    cls: (tag, tuple(f.name for f in fields(cls))) for tag, (cls, _) in _KINDS.items()}
_OPEN_CHECKS: tuple[_Check, ...] = (text, count, _names, text, count, count, count,
                                    count, _seconds, text, text)


def decode(body: Any) -> Message:
    """Read a swarm message a peer sent.

    Raises:
        RemoteProtocolError: not a swarm message (kind, field count or a field's type).
    """
    if type(body) is not list or not body or type(body[0]) is not str:
        raise RemoteProtocolError(f"not a swarm message: {body!r}"[:200])
    if body[0] == "swarm-open":
        return _decode_open(body[1:])
    if body[0] == "swarm-probe" and len(body) == 1:
        return Probe()
    spec = _KINDS.get(body[0])
    if spec is None:
        raise RemoteProtocolError(f"unknown swarm message kind {body[0]!r}"[:200])
    cls, checks = spec
    if len(body) != len(checks) + 1:
        raise RemoteProtocolError(f"{body[0]} has {len(body) - 1} fields, not {len(checks)}")
    return cls(*(check(value) for check, value in zip(checks, body[1:])))  # type: ignore[no-any-return]


def _decode_open(values: list[Any]) -> Opening:
    if len(values) != len(_OPEN_CHECKS) + 3:
        raise RemoteProtocolError(f"swarm-open has {len(values)} fields")
    core = Open(*(check(v) for check, v in zip(_OPEN_CHECKS, values)))
    endpoints = values[len(_OPEN_CHECKS)]
    if type(endpoints) is not list or len(endpoints) != len(core.members):
        raise RemoteProtocolError("swarm-open: one endpoint per member expected")
    for endpoint in endpoints:
        if type(endpoint) is not str or len(endpoint) > MAX_ENDPOINT:
            raise RemoteProtocolError("swarm-open: an endpoint is not a short string")
    return Opening(core, tuple(endpoints), text(values[-2]), values[-1])


def encode(message: Message) -> list[Any]:
    """The wire body of ``message`` (msgpack-able)."""
    if isinstance(message, Opening):
        o = message.open
        return ["swarm-open", o.stream, o.stripe, list(o.members), o.name, o.size,
                o.chunk_size, o.stripes, o.fanout, o.chunk_timeout, o.channel, o.topic,
                list(message.endpoints), message.origin, message.context]
    if isinstance(message, Probe):
        return ["swarm-probe"]
    tag, names = _LAYOUT[type(message)]
    return [tag, *(getattr(message, name) for name in names)]
