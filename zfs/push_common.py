"""What both ends of a push share: the receiver's actor name and what the app gets.

The app receives :class:`Progress` (both ends), :class:`PushResult` (the sender) and
:class:`ReceivedFile` (each target); :func:`run_callback` calls the app's callbacks so
that an error in app code is logged and never breaks a transfer.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, List, NamedTuple, Optional

log = logging.getLogger(__name__)

RECEIVER = "zfs.receiver"    # every site's receiver actor; senders address "<site>/zfs.receiver"


class Progress(NamedTuple):
    """How far a push is at ``peer``: ``bytes_done`` of ``total`` (None: unknown yet).

    ``context`` is the stream's context on the receiving side (None on the sender).
    """

    name: str
    bytes_done: int
    total: Optional[int]
    peer: str
    context: Any = None


class ReceivedFile(NamedTuple):
    """A file a push delivered: checked, renamed into place at ``location`` (its full path)."""

    name: str
    location: str
    size: int
    context: Any
    sender_site: str
    channel: str
    topic: str


class PushResult(NamedTuple):
    """A push that every target committed."""

    name: str
    size: int
    digest: str
    targets: List[str]
    seconds: float


def run_callback(callback: Callable[..., Any], *args: Any) -> None:
    """Run an app callback; its errors are logged, never allowed to break a transfer."""
    try:
        callback(*args)
    except Exception:  # noqa: BLE001 - app code must not kill the actor
        log.exception("callback %r failed", callback)
