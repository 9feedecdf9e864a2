"""The pull owner's book: what it holds, kept apart from its actor, and what the app asks.

:class:`OwnerState` outlives an owner actor that crashed (the supervisor revives it with
its predecessor's state), so shares and their digests survive. The ``_OpenTx`` ...
``_FindTx`` messages are the asks :mod:`zfs.pull.transaction` sends the owner actor
(:mod:`zfs.pull.owner`). A shared file's resume key is derived here, from what
identifies the file, so the same file shared again resumes.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from zfs.buffers import BufferPool
from zfs.files import Digest
from zfs.protocol.pull import owner as core
from zfs.tree.source import TreeSource
from zfs.tree.walk import Walked

OWNER = "zfs.owner"
MAX_CHUNK_SIZE = 8 << 20
#: Chunk bytes an owner lets be in flight to all its recipients together (plus one chunk
#: per download): what bounds its memory, whatever the number of recipients.
MAX_INFLIGHT_BYTES = 16 << 20

TimeoutCallback = Callable[[str, list[str]], Any]
DownloadedCallback = Callable[[str, str, str, str], Any]


@dataclass(frozen=True, slots=True)
class _OpenTx:
    tx_id: str
    timeout: float
    on_timeout: Optional[TimeoutCallback]


@dataclass(frozen=True, slots=True)
class _AddFile:
    tx_id: str
    rid: str
    path: str
    name: str
    size: int
    mtime_ns: int
    on_downloaded: Optional[DownloadedCallback]
    tree: Optional[Walked] = None


@dataclass(frozen=True, slots=True)
class _EndTx:
    tx_id: str


@dataclass(frozen=True, slots=True)
class _Stats:
    pass


@dataclass(frozen=True, slots=True)
class _Bwlimit:
    rate: Optional[float]


@dataclass(frozen=True, slots=True)
class _FindTx:
    tx_id: str


@dataclass(slots=True)
class _Shared:
    path: str
    size: int
    mtime_ns: int
    digest: Future[str]
    on_downloaded: Optional[DownloadedCallback]
    tree: Optional[Walked] = None
    manifest: bytes = b""
    file_digests: Optional[Future[bytes]] = None


class _TreeStream:
    """A shared tree's stream, read as a shared file's is (by offset)."""

    def __init__(self, walked: Walked) -> None:
        self._source = TreeSource(walked.root, walked.manifest)

    def read_into(self, offset: int, length: int, pool: BufferPool) -> memoryview:
        return self._source.read(self._source.layout, offset, length, pool)

    def check_unchanged(self) -> None:
        """Each file is checked as it is read (see TreeSource)."""

    def close(self) -> None:
        self._source.close()


@dataclass(slots=True)
class OwnerState:
    """What an owner knows, kept apart from the actor so a restarted owner keeps serving."""

    shares: core.Shares = field(default_factory=lambda: core.Shares(MAX_CHUNK_SIZE,
                                                                   MAX_INFLIGHT_BYTES))
    on_timeout: dict[str, Optional[TimeoutCallback]] = field(default_factory=dict)
    files: dict[str, _Shared] = field(default_factory=dict)
    bytes_sent: int = 0
    chunks_sent: int = 0
    bwlimit: Optional[float] = None


def _resume_key(msg: _AddFile) -> str:
    """The same key for the same file shared again (new RID), so a download resumes.

    Two different files with one key cannot mix: a resume checks the bytes it holds
    against the owner's digest of them first. A tree's key is its folder's path alone:
    what a recipient holds of it is checked file by file.
    """
    identity = Digest()
    text = (f"tree\0{msg.path}" if msg.tree is not None
            else f"{msg.path}\0{msg.size}\0{msg.mtime_ns}")
    identity.update(text.encode("utf-8", "surrogateescape"))
    return identity.hexdigest()
