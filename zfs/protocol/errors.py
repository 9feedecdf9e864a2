"""What goes wrong, in one vocabulary for push and pull.

Two kinds of wrong, as in h11: :class:`LocalProtocolError` is our own caller breaking
a core's contract (a bug in the shell, or a bad argument from the app);
:class:`RemoteProtocolError` is a peer's message that breaks the protocol (raised by
:func:`zfs.protocol.inbound.decode`; the transfer it belongs to fails, the site goes on).

A :class:`Failure` says why a transfer ended without a file. Cores report it in their
finishing commands, receivers send it over the wire as its value, and the shells turn
it into the exception the app catches, so both ends and both protocols spell it alike.
"""

from __future__ import annotations

import enum


class LocalProtocolError(Exception):
    """Our own caller misused a core (a bug in the shell, or a bad argument)."""


class RemoteProtocolError(Exception):
    """A peer sent a message that breaks the protocol (malformed, out of place)."""


class Failure(str, enum.Enum):
    """Why a push or a download ended without a file (sent over the wire as the value)."""

    REFUSED = "refused"          # the target does not take this stream (registration, limits)
    UNKNOWN = "unknown"          # the owner shares nothing under this RID
    EXPIRED = "expired"          # the transaction of a RID ended or timed out
    CHANGED = "changed"          # the shared or pushed file changed or vanished meanwhile
    PROTOCOL = "protocol"        # a message that breaks the exchange (offset, order, format)
    INTEGRITY = "integrity"      # size or digest differ at the end
    UNSAFE_NAME = "unsafe_name"  # a file name that is not a plain name
    IO = "io"                    # the peer's disk could not create, write or rename the file
    TIMEOUT = "timeout"          # the peer went silent too long (after any retries)
    LOST = "lost"                # the runtime reported the peer's site gone
    LOCAL = "local"              # our own side failed: our source, our disk, our site stopping
    ABORTED = "aborted"          # our caller aborted the transfer

    @classmethod
    def parse(cls, value: object) -> Failure:
        """The failure a peer named, or PROTOCOL for a value that names none."""
        try:
            return cls(value)
        except ValueError:
            return cls.PROTOCOL
