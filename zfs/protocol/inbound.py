"""Reading what a peer sent: one decode that refuses any body not a message of the wire.

A peer's body is not trusted, so it is read in this one place and nowhere else: the
kind must be one :data:`zfs.protocol.wire.KINDS` names, the number of fields that
kind's, and each field of the type it should be, with no coercion (``"10"`` is not a
count, ``0`` not a flag). Anything else raises :class:`RemoteProtocolError`, so cores
and shells only ever see well-formed messages. The messages and their encode stay in
:mod:`zfs.protocol.wire`: writing our own needs no such care.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from zfs.protocol import wire
from zfs.protocol.errors import Failure, RemoteProtocolError

_MAX_INT = 2**63 - 1


def _text(value: Any) -> str:
    if type(value) is not str:
        raise RemoteProtocolError(f"expected a string, not {type(value).__name__}")
    return value


def _count(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= _MAX_INT:
        raise RemoteProtocolError(f"expected a whole number >= 0, not {value!r}"[:200])
    return value


def _maybe_count(value: Any) -> Optional[int]:
    return None if value is None else _count(value)


def _flag(value: Any) -> bool:
    if type(value) is not bool:
        raise RemoteProtocolError(f"expected true or false, not {value!r}"[:200])
    return value


def _section(value: Any) -> wire.Section:
    try:
        return wire.Section(value)
    except ValueError:
        raise RemoteProtocolError(f"unknown tree section {value!r}"[:200]) from None


def _anything(value: Any) -> Any:
    return value


def _failure(value: Any) -> Failure:
    return Failure.parse(value)


def _status(value: Any) -> wire.Status:
    try:
        return wire.Status(value)
    except ValueError:
        raise RemoteProtocolError(f"unknown download status {value!r}"[:200]) from None


_Check = Callable[[Any], Any]

#: Each class's field checks, in field order.
_CHECKS: dict[type, tuple[_Check, ...]] = {
    wire.Open: (_text, _text, _maybe_count, _count, _count, _text, _text, _anything),
    wire.Chunk: (_text, _count),
    wire.End: (_text, _count, _text),
    wire.Abort: (_text, _text),
    wire.Accepted: (_text,),
    wire.Acked: (_text, _count),
    wire.Committed: (_text,),
    wire.Failed: (_text, _failure, _text),
    wire.InfoRequest: (_text,),
    wire.FileInfo: (_text, _text, _count, _text),
    wire.PrefixRequest: (_text, _count),
    wire.PrefixDigest: (_text, _count, _text),
    wire.ChunkRequest: (_text, _count, _count, _count),
    wire.ChunkData: (_text, _count),
    wire.MarkReport: (_text, _count),
    wire.DigestRequest: (_text,),
    wire.FileDigest: (_text, _text),
    wire.DoneReport: (_text, _status),
    wire.Refusal: (_text, _failure),
    wire.TreeOpen: (_text, _text, _text, _count, _count, _count, _count, _count, _text,
                    _text, _anything, _flag, _flag),
    wire.TreeOffer: (_text,),
    wire.Checking: (_text,),
    wire.TreePlan: (_text, _count),
    wire.TreeInfo: (_text, _text, _text, _count, _count, _count),
    wire.MetaRequest: (_text, _section, _count, _count),
    wire.MetaData: (_text, _section, _count),
    wire.RangeDigestRequest: (_text, _count, _count),
    wire.RangeDigest: (_text, _count, _count, _text),
}


def decode(body: Any) -> wire.Message:
    """Read a message a peer sent.

    Raises:
        RemoteProtocolError: not a message of this protocol (kind, field count or a
            field's type is wrong).
    """
    if type(body) is not list or not body or type(body[0]) is not str:
        raise RemoteProtocolError(f"not a zfs message: {body!r}"[:200])
    cls = wire.KINDS.get(body[0])
    if cls is None:
        raise RemoteProtocolError(f"unknown message kind {body[0]!r}"[:200])
    checks = _CHECKS[cls]
    if len(body) != len(checks) + 1:
        raise RemoteProtocolError(f"{body[0]} has {len(body) - 1} fields, not {len(checks)}")
    values = [check(value) for check, value in zip(checks, body[1:])]
    return cls(*values)  # type: ignore[no-any-return]


__all__ = ["decode"]
