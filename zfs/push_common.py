"""What both ends of a push share: the receiver's actor name and what the app gets.

The app receives :class:`Progress` (both ends), :class:`PushResult` (the sender) and
:class:`ReceivedFile` (each target).
"""

from __future__ import annotations

from typing import Any, List, NamedTuple, Optional

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


