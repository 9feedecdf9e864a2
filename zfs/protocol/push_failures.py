"""How a push fails: the failure kinds both cores report, and our own caller's misuse.

A kind travels in the sender's ``Finished`` and in the receiver's ``SendError``
(and from there over the wire), so both ends must spell them alike.
"""

from __future__ import annotations

# Failure kinds carried by Finished and by the receiver's errors.
REFUSED = "refused"        # the target does not take this stream (registration, limits, name)
INTEGRITY = "integrity"    # size or digest differ at the end
PROTOCOL = "protocol"      # a message that breaks the exchange (offset, order, unknown stream)
IO = "io"                  # the target could not create or write its file
EXPIRED = "expired"        # no activity within the target's inactivity timeout
TIMEOUT = "timeout"        # the target did not answer within chunk_timeout
LOST = "lost"              # the runtime reported the target site down
SOURCE = "source"          # our own source could not be read, or changed


class ProtocolMisuse(RuntimeError):
    """Our own caller broke the core's contract (a bug in the shell, not a peer)."""
