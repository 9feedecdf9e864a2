"""What the app gets from a transfer: progress on the way, a result at the end.

The same :class:`Progress` for push and pull, at both ends; :class:`PushResult` for the
sender, :class:`ReceivedFile` for each push target, :class:`DownloadResult` for a
recipient.
"""

from __future__ import annotations

from typing import Any, List, NamedTuple, Optional


class Progress(NamedTuple):
    """How far a transfer of ``name`` is with ``peer``: ``bytes_done`` of ``total``.

    ``total`` is None while unknown (a pushed stream of unknown length); ``context`` is
    the stream's context on a push's receiving side (None elsewhere).
    """

    name: str
    bytes_done: int
    total: Optional[int]
    peer: str
    context: Any = None


class ReceivedFile(NamedTuple):
    """A file a push delivered: checked, renamed into place at ``path``."""

    name: str
    path: str
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


class DownloadResult(NamedTuple):
    """A download that is checked and in place at ``path``.

    ``bytes_moved`` is what this run fetched: less than ``size`` when it resumed bytes an
    earlier run had verified, so ``bytes_moved / seconds`` is its true rate.
    """

    name: str
    path: str
    size: int
    digest: str
    owner: str
    bytes_moved: int
    seconds: float
