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
from zfs.protocol.fields import count, flag, text


def _maybe_count(value: Any) -> Optional[int]:
    return None if value is None else count(value)


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
    wire.Open: (text, text, _maybe_count, count, count, text, text, _anything),
    wire.Chunk: (text, count),
    wire.End: (text, count, text),
    wire.Abort: (text, text),
    wire.Accepted: (text,),
    wire.Acked: (text, count),
    wire.Committed: (text,),
    wire.Failed: (text, _failure, text),
    wire.InfoRequest: (text,),
    wire.FileInfo: (text, text, count, text),
    wire.PrefixRequest: (text, count),
    wire.PrefixDigest: (text, count, text),
    wire.ChunkRequest: (text, count, count, count),
    wire.ChunkData: (text, count),
    wire.MarkReport: (text, count),
    wire.DigestRequest: (text,),
    wire.FileDigest: (text, text),
    wire.DoneReport: (text, _status),
    wire.Refusal: (text, _failure),
    wire.TreeOpen: (text, text, text, count, count, count, count, count, text,
                    text, _anything, flag, flag),
    wire.TreeOffer: (text,),
    wire.Checking: (text,),
    wire.TreePlan: (text, count),
    wire.TreeInfo: (text, text, text, count, count, count),
    wire.MetaRequest: (text, _section, count, count),
    wire.MetaData: (text, _section, count),
    wire.RangeDigestRequest: (text, count, count),
    wire.RangeDigest: (text, count, count, text),
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
