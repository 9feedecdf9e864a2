"""Checks of single fields a peer sent, shared by every decoder of the wire.

A peer's message is read without coercion: a count is an ``int`` in range (``"10"`` is
not one, nor ``True``), text is a ``str``, a flag a ``bool``. Each check returns the
value or raises :class:`~zfs.protocol.errors.RemoteProtocolError`, so a decoder lists
one check per field and never sees a value of the wrong type.
"""

from __future__ import annotations

from typing import Any, Optional

from zfs.protocol.errors import RemoteProtocolError

#: The largest count msgpack carries as a signed 64-bit integer.
MAX_INT = 2**63 - 1


def text(value: Any, most: Optional[int] = None) -> str:
    """A string (of at most ``most`` characters, if given)."""
    if type(value) is not str:
        raise RemoteProtocolError(f"expected a string, not {type(value).__name__}")
    if most is not None and len(value) > most:
        raise RemoteProtocolError(f"a string of {len(value)} characters, over {most}")
    return value


def count(value: Any) -> int:
    """A whole number from 0 to :data:`MAX_INT`."""
    if type(value) is not int or not 0 <= value <= MAX_INT:
        raise RemoteProtocolError(f"expected a whole number >= 0, not {value!r}"[:200])
    return value


def flag(value: Any) -> bool:
    """True or false, nothing else."""
    if type(value) is not bool:
        raise RemoteProtocolError(f"expected true or false, not {value!r}"[:200])
    return value
