"""What a tree download at the recipient can be in, and what it asks its shell to do.

The states and commands of :class:`~zfs.protocol.pull.tree.download.TreeDownload`
(see its module for the lifecycle); the shell (``zfs.pull.tree.download``) carries
the commands out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional, Union

from zfs.protocol.errors import Failure
from zfs.protocol.states import Transitions
from zfs.protocol.tree.layout import Layout
from zfs.protocol.tree.manifest import Manifest
from zfs.protocol.wire import Section


class TreeDlState(enum.Enum):
    """Lifecycle of one tree download at the recipient."""

    MANIFEST = "manifest"
    PREPARING = "preparing"
    CHECKING = "checking"
    FETCHING = "fetching"
    VERIFYING = "verifying"
    COMMITTING = "committing"
    DONE = "done"
    FAILED = "failed"
    ABORTED = "aborted"


_BAD = frozenset({TreeDlState.FAILED, TreeDlState.ABORTED})
#: States a download never leaves.
ENDS = _BAD | {TreeDlState.DONE}
TREE_DL_TRANSITIONS: Transitions[TreeDlState] = {
    TreeDlState.MANIFEST: frozenset({TreeDlState.PREPARING}) | _BAD,
    TreeDlState.PREPARING: frozenset({TreeDlState.CHECKING}) | _BAD,
    TreeDlState.CHECKING: frozenset({TreeDlState.FETCHING}) | _BAD,
    TreeDlState.FETCHING: frozenset({TreeDlState.VERIFYING}) | _BAD,
    TreeDlState.VERIFYING: frozenset({TreeDlState.COMMITTING}) | _BAD,
    TreeDlState.COMMITTING: frozenset({TreeDlState.DONE}) | _BAD,
    TreeDlState.DONE: frozenset(),
    TreeDlState.FAILED: frozenset(),
    TreeDlState.ABORTED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """Ask the owner for ``length`` bytes at ``offset`` of ``section``."""

    section: Section
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class StoreMeta:
    """Keep the payload just received: bytes of ``section`` at ``offset``."""

    section: Section
    offset: int


@dataclass(frozen=True, slots=True)
class LoadSection:
    """``section`` is complete: hand its bytes to ``section_loaded``."""

    section: Section


@dataclass(frozen=True, slots=True)
class Prepare:
    """Open the staging folder under ``key``, gather and digest what we hold; then call
    ``prepared`` with the offers (file, bytes held, their digest)."""

    manifest: Manifest
    key: str


@dataclass(frozen=True, slots=True)
class RequestRangeDigest:
    """Ask the owner for the digest of the stream's ``length`` bytes at ``offset``."""

    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class ApplyPlan:
    """Check the room, drop what is not held, make folders, links and empty files; then
    call ``plan_applied``. ``held[file]``: bytes of it held, verified."""

    layout: Layout
    held: dict[int, int]


@dataclass(frozen=True, slots=True)
class RequestChunk:
    """Ask for ``length`` stream bytes at ``offset``; we hold all that we need below ``mark``."""

    offset: int
    length: int
    mark: int


@dataclass(frozen=True, slots=True)
class CheckShared:
    """Ask the owner whether it still shares the tree (its answer is not waited for).

    Sent when the owner is back after being away: a site that restarted without
    sharing the RID answers this at once, where a request would go unanswered until its
    retries ran out.
    """


@dataclass(frozen=True, slots=True)
class ReportMark:
    """Tell the owner we hold all we need below ``mark`` (no request left to carry it)."""

    mark: int


@dataclass(frozen=True, slots=True)
class WriteChunk:
    """Write the payload just received: the stream's bytes at ``offset``."""

    offset: int


@dataclass(frozen=True, slots=True)
class Verify:
    """Check every file of ``files`` against ``digests``; then call ``verified``."""

    files: tuple[int, ...]
    digests: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Commit:
    """Set modes and times and put the tree in place; then call ``committed``."""


@dataclass(frozen=True, slots=True)
class Finish:
    """The download ended: report to the owner (if reachable) and to our caller."""

    state: TreeDlState
    failure: Optional[Failure] = None
    detail: str = ""


TreeDownloadCommand = Union[RequestMeta, StoreMeta, LoadSection, Prepare, RequestRangeDigest,
                            ApplyPlan, RequestChunk, CheckShared, ReportMark, WriteChunk,
                            Verify, Commit, Finish]
