"""What a swarm download can be in, and what it asks its shell to do.

The states and commands of :class:`~zfs.protocol.swarm.download.SwarmDownload` (see
its module for the lifecycle), apart from its rules: the shell
(``zfs.swarm.download``) carries the commands out and needs their shapes, not the
rules that choose them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Union

from zfs.protocol.swarm.wire import Send


class DownloadState(enum.Enum):
    """Where a swarm download is."""

    JOINING = "joining"
    FETCHING = "fetching"
    VERIFYING = "verifying"
    DONE = "done"
    FAILED = "failed"
    ABORTED = "aborted"


#: The states a download ends in.
ENDS = (DownloadState.DONE, DownloadState.FAILED, DownloadState.ABORTED)
DOWNLOAD_TRANSITIONS: dict[DownloadState, tuple[DownloadState, ...]] = {
    DownloadState.JOINING: (DownloadState.FETCHING, DownloadState.VERIFYING) + ENDS[1:],
    DownloadState.FETCHING: (DownloadState.VERIFYING,) + ENDS[1:],
    DownloadState.VERIFYING: ENDS,
    DownloadState.DONE: (),
    DownloadState.FAILED: (),
    DownloadState.ABORTED: (),
}


@dataclass(frozen=True, slots=True)
class OpenPartial:
    """Open the temporary file for ``name`` under ``key``; call ``partial_opened``."""

    name: str
    key: str


@dataclass(frozen=True, slots=True)
class Dial:
    """Open a link to ``peer`` at ``endpoint`` (once per peer); messages to it follow."""

    peer: str
    endpoint: str


@dataclass(frozen=True, slots=True)
class CheckPiece:
    """Digest the piece just received for chunk ``index``; call ``piece_checked``."""

    index: int
    digest: str


@dataclass(frozen=True, slots=True)
class WriteChunk:
    """Write the piece of chunk ``index`` at ``offset``; call ``chunk_written``."""

    index: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class Commit:
    """Check size and whole-file digest, rename; call ``committed`` or ``commit_failed``."""

    size: int
    digest: str


@dataclass(frozen=True, slots=True)
class Finish:
    """The download ended: tell our caller, with how the bytes travelled."""

    state: DownloadState
    detail: str
    from_owner: int
    from_peers: tuple[tuple[str, int], ...]


DownloadCommand = Union[Send, OpenPartial, Dial, CheckPiece, WriteChunk, Commit, Finish]
