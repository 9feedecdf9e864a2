"""What the app gets from a transfer: progress on the way, a result at the end.

The same :class:`Progress` for push and pull, at both ends; :class:`PushResult` for the
sender, :class:`ReceivedFile` for each push target, :class:`DownloadResult` for a
recipient; for a folder (a tree) :class:`TreePushResult`, :class:`ReceivedTree` and
:class:`TreeDownloadResult`, whose first fields are those of the file's.
"""

from __future__ import annotations

from typing import Any, List, NamedTuple, Optional, Tuple


class Progress(NamedTuple):
    """How far a transfer of ``name`` is with ``peer``: ``bytes_done`` of ``total``.

    ``total`` is None while unknown (a pushed stream of unknown length); ``context`` is
    the stream's context on a push's receiving side (None elsewhere). For a tree,
    ``files`` is its number of files (0 for a single file), ``files_done`` how many are
    complete, and ``current`` the file being moved.
    """

    name: str
    bytes_done: int
    total: Optional[int]
    peer: str
    context: Any = None
    files_done: int = 0
    files: int = 0
    current: str = ""


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
    """A push that every target committed, and how its bytes travelled.

    ``route`` is ``"star"`` (the sender sent every chunk to every target) or
    ``"swarm"`` (each chunk once, the targets passing it on); ``sender_bytes`` is what
    the sender uploaded of the file, ``sender_copies`` that in copies of it; ``note``
    says why a push that could have gone the swarm way went the star way.
    """

    name: str
    size: int
    digest: str
    targets: List[str]
    seconds: float
    route: str = "star"
    sender_bytes: int = 0
    note: str = ""

    @property
    def sender_copies(self) -> float:
        """The sender's upload in copies of the file (1.0 for a swarm, N for a star)."""
        return self.sender_bytes / self.size if self.size else 0.0


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
    #: "direct": every byte came from the owner; "swarm": pulled with peers.
    route: str = "direct"
    #: (peer site, bytes it served) for a pull with peers; the rest came from the owner.
    from_peers: tuple[tuple[str, int], ...] = ()
    #: Why a pull with peers got every byte from the owner ("" otherwise).
    note: str = ""

    @property
    def from_owner(self) -> int:
        """The bytes of this run that the owner sent."""
        return self.bytes_moved - sum(count for _, count in self.from_peers)


class TreePushResult(NamedTuple):
    """A tree that every target committed.

    ``sent`` and ``skipped`` are the files' relative paths: those whose bytes (some or
    all) moved, and those no byte of which had to move (every target held them, or they
    are empty). ``bytes_moved`` is the file bytes that travelled to each target in this
    run, so ``bytes_moved / seconds`` is its true rate. ``ignored``: special files of the
    source that were not sent (FIFOs, sockets, devices).
    """

    name: str
    size: int
    files: int
    sent: Tuple[str, ...]
    skipped: Tuple[str, ...]
    bytes_moved: int
    targets: List[str]
    seconds: float
    ignored: Tuple[str, ...] = ()


class ReceivedTree(NamedTuple):
    """A tree a push delivered: checked and put in place at ``path`` (a folder) at once."""

    name: str
    path: str
    size: int
    context: Any
    sender_site: str
    channel: str
    topic: str
    files: int
    bytes_moved: int


class TreeDownloadResult(NamedTuple):
    """A downloaded tree, every file checked, put in place at ``path`` at once.

    The first fields are :class:`DownloadResult`'s (``digest`` is the manifest's);
    ``fetched`` and ``skipped`` are the files' relative paths whose bytes moved in this
    run, and those already held (or empty).
    """

    name: str
    path: str
    size: int
    digest: str
    owner: str
    bytes_moved: int
    seconds: float
    files: int
    fetched: Tuple[str, ...]
    skipped: Tuple[str, ...]
