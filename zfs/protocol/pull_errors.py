"""What goes wrong in pull, in words both cores share.

:class:`Refusal` is why an owner will not serve a request; it travels over the wire as
its value, and a download turns it into its own :class:`~zfs.protocol.pull_download.Failure`.
:class:`LocalProtocolError` is our own caller misusing a core.
"""

from __future__ import annotations

import enum
from typing import Optional

class LocalProtocolError(Exception):
    """Our own caller misused a core (unknown or ended transaction, bad argument)."""

    def __init__(self, text: str, refusal: Optional["Refusal"] = None) -> None:
        super().__init__(text)
        self.refusal = refusal


class Refusal(str, enum.Enum):
    """Why the owner will not serve a request (sent over the wire as the value)."""

    UNKNOWN = "unknown"
    EXPIRED = "expired"
    CHANGED = "changed"
    BAD_REQUEST = "bad_request"
