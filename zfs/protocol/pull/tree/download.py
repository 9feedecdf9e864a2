"""The recipient's side of pulling a tree, as a pure core: one :class:`TreeDownload`.

Time is the ``now`` argument; the answers are commands the shell
(``zfs.pull.tree.download``) carries out::

    MANIFEST --manifest loaded--> PREPARING --prepared--> CHECKING --held known-->
        FETCHING --last chunk--> VERIFYING --files verified--> COMMITTING --> DONE

    any state but DONE --refused / owner lost / no answer / error / abort--> FAILED | ABORTED

MANIFEST: the manifest comes by pages (:class:`~zfs.protocol.wire.MetaRequest`).
PREPARING: the shell opens the tree's staging folder (named by the owner's key, so the
same tree shared again resumes), links in files of a tree already at the final place
that have the right size, and digests what it holds. CHECKING: a whole file held is
compared with the owner's per-file digest (the digests' section), a file's first bytes
with the owner's digest of that range; what matches is held. FETCHING: chunk requests
for what is not held, in the stream's coordinates, never across the end of a needed
range; a window of them in flight, each resent on its deadline (``retries`` times), so
a tree of small files moves in whole chunks with no round trip per file. VERIFYING:
each file fetched (in whole or in part) is checked against the owner's digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Hashable, Optional

from zfs.protocol.errors import Failure, LocalProtocolError, RemoteProtocolError
from zfs.protocol.names import name_problem
from zfs.protocol.pull.tree.commands import (ENDS, TREE_DL_TRANSITIONS, ApplyPlan, CheckShared,
                                             Commit, Finish, LoadSection, Prepare, ReportMark,
                                             RequestChunk, RequestMeta, RequestRangeDigest,
                                             StoreMeta, TreeDlState, TreeDownloadCommand,
                                             Verify, WriteChunk)
from zfs.protocol.states import move
from zfs.protocol.tree.layout import DIGEST_CHARS, Layout, Offer, unpack_digests
from zfs.protocol.tree.manifest import Manifest, decode
from zfs.protocol.wire import Section


@dataclass(slots=True)
class _Pending:
    command: TreeDownloadCommand
    length: int
    deadline: float
    sends: int = 1


class TreeDownload:
    """One download of one tree RID: its manifest, a plan, a window of chunk requests.

    Args:
        window_chunks, chunk_size, request_timeout, retries: as for a file's download.
        max_manifest_size, max_files: the largest tree accepted.
        owner_wait: seconds to wait for an owner whose site went away.
    """

    def __init__(self, *, window_chunks: int = 8, chunk_size: int = 1 << 20,
                 request_timeout: float = 10.0, retries: int = 3,
                 max_manifest_size: int = 48 << 20, max_files: int = 1 << 20,
                 owner_wait: Optional[float] = None) -> None:
        if window_chunks < 1 or chunk_size < 1 or retries < 0 or not request_timeout > 0:
            raise LocalProtocolError("window_chunks, chunk_size >= 1; retries >= 0; timeout > 0")
        self._window, self._chunk = window_chunks, chunk_size
        self._timeout, self._retries = request_timeout, retries
        self._max_manifest, self._max_files = max_manifest_size, max_files
        self.owner_wait = request_timeout if owner_wait is None else owner_wait
        self.state = TreeDlState.MANIFEST
        self.name = self.key = ""
        self.manifest: Optional[Manifest] = None
        self.layout: Optional[Layout] = None          # the whole stream
        self.held: dict[int, int] = {}                # file -> verified bytes held
        #: Stream bytes received in this run.
        self.received = 0
        self._files = self._size = self._manifest_size = 0
        self._sections: dict[Section, int] = {}
        self._have_meta: dict[Section, int] = {}      # section -> bytes stored
        self._digests: Optional[list[str]] = None
        self._offers: dict[int, Offer] = {}
        self._owner_ranges: dict[tuple[int, int], str] = {}
        self._ranges: list[tuple[int, int]] = []      # what to fetch, in order
        self._range = 0
        self._next = 0
        self._pending: dict[Hashable, _Pending] = {}
        self._away_since: Optional[float] = None
        self._away_detail = ""

    @property
    def finished(self) -> bool:
        """True once the download is DONE, FAILED or ABORTED."""
        return self.state in ENDS

    @property
    def bytes_done(self) -> int:
        """Bytes of the tree's files we hold: verified before, and received in this run."""
        return sum(self.held.values()) + self.received

    @property
    def total(self) -> int:
        """Bytes of the tree's files."""
        return self._size

    @property
    def files(self) -> int:
        """How many files the tree has."""
        return self._files

    def files_done(self) -> int:
        """How many files we hold whole (held, or fetched up to their end)."""
        if self.layout is None:
            return 0
        return self.layout.files_done(self._mark())

    def started(self, name: str, key: str, files: int, size: int, manifest_size: int,
                now: float) -> list[TreeDownloadCommand]:
        """Begin with the owner's answer about the tree: fetch its manifest."""
        problem = name_problem(name) or name_problem(key)
        if problem is not None:
            return self._fail(Failure.UNSAFE_NAME, problem)
        if not 0 < manifest_size <= self._max_manifest or files > self._max_files:
            return self._fail(Failure.PROTOCOL, f"a tree of {files} files, manifest of "
                              f"{manifest_size} bytes, is over this recipient's limits")
        self.name, self.key = name, key
        self._files, self._size, self._manifest_size = files, size, manifest_size
        self._sections = {Section.MANIFEST: manifest_size,
                          Section.DIGESTS: files * DIGEST_CHARS}
        return self._ask_section(Section.MANIFEST, now)

    # -- the owner's answers

    def meta_received(self, section: Section, offset: int, length: int,
                      now: float) -> list[TreeDownloadCommand]:
        """A page of ``section`` arrived."""
        want = self._pending.get(("meta", section, offset))
        if want is None or self.finished:
            return []
        if length != want.length:
            return self._fail(Failure.PROTOCOL, f"{section.value} page at {offset}: {length} "
                              f"bytes, asked {want.length}")
        del self._pending[("meta", section, offset)]
        self._have_meta[section] = self._have_meta.get(section, 0) + length
        out: list[TreeDownloadCommand] = [StoreMeta(section, offset)]
        if self._have_meta[section] == self._sections[section]:
            out.append(LoadSection(section))
        return out

    def section_loaded(self, section: Section, data: bytes,
                       now: float) -> list[TreeDownloadCommand]:
        """The shell hands the complete bytes of ``section``."""
        if self.finished:
            return []
        try:
            if section is Section.MANIFEST:
                return self._manifest_loaded(decode(data, self._max_files + 1))
            self._digests = unpack_digests(data, self._files)
        except RemoteProtocolError as err:
            return self._fail(Failure.PROTOCOL, f"bad {section.value}: {err}")
        return self._next_step(now)

    def range_digest_received(self, offset: int, length: int, digest: str,
                              now: float) -> list[TreeDownloadCommand]:
        """The owner's digest of a range of the stream."""
        if self._pending.pop(("range", offset, length), None) is None or self.finished:
            return []
        self._owner_ranges[(offset, length)] = digest
        return self._next_step(now)

    def chunk_received(self, offset: int, length: int, now: float) -> list[TreeDownloadCommand]:
        """A chunk arrived; write it if we asked for it and have not had it yet."""
        want = self._pending.get(offset)
        if self.state is not TreeDlState.FETCHING or want is None:
            return []
        if length != want.length:
            return self._fail(Failure.PROTOCOL,
                              f"chunk at {offset}: {length} bytes, asked {want.length}")
        mark_before = self._mark()
        del self._pending[offset]
        self.received += length
        write: list[TreeDownloadCommand] = [WriteChunk(offset)]
        if self._range >= len(self._ranges) and not self._chunks_pending():
            return write + self._verify(now)
        more = self._fill(now)
        if not more and self._mark() > mark_before:
            more = [ReportMark(self._mark())]
        return more + write

    # -- our shell's answers

    def prepared(self, offers: Sequence[Offer], now: float) -> list[TreeDownloadCommand]:
        """We hold what ``offers`` say (digested here)."""
        if self.state is not TreeDlState.PREPARING:
            return []
        self._move(TreeDlState.CHECKING)
        self._offers = {o.file: o for o in offers}
        out: list[TreeDownloadCommand] = []
        if any(o.length == self._file_size(o.file) for o in offers) and self._digests is None:
            out += self._ask_section(Section.DIGESTS, now)
        assert self.layout is not None
        for o in offers:
            if o.length < self._file_size(o.file):
                begin = self.layout.begin_of(o.file)
                out.append(self._send(("range", begin, o.length),
                                      RequestRangeDigest(begin, o.length), o.length, now))
        return out + (self._next_step(now) if not out else [])

    def plan_applied(self, now: float) -> list[TreeDownloadCommand]:
        """The staging folder holds exactly what is held: fetch the rest."""
        if self.state is not TreeDlState.CHECKING:
            return []
        self._move(TreeDlState.FETCHING)
        if not self._ranges:
            return self._verify(now)
        return self._fill(now)

    def verified(self, bad: Sequence[int]) -> list[TreeDownloadCommand]:
        """The shell checked the files (``bad``: those whose digest differs)."""
        if self.state is not TreeDlState.VERIFYING:
            return []
        if bad:
            assert self.manifest is not None
            names = ", ".join(self.manifest.file(f).path for f in list(bad)[:3])
            return self._fail(Failure.INTEGRITY, f"{len(bad)} file(s) differ from the "
                              f"owner's: {names}")
        self._move(TreeDlState.COMMITTING)
        return [Commit()]

    def committed(self) -> list[TreeDownloadCommand]:
        """The tree is in place."""
        if self.state is not TreeDlState.COMMITTING:
            return []
        self._move(TreeDlState.DONE)
        return [Finish(TreeDlState.DONE)]

    def local_error(self, detail: str) -> list[TreeDownloadCommand]:
        """Our own side failed (disk full, staging not creatable)."""
        return self._fail(Failure.LOCAL, detail)

    def refused(self, failure: Failure, detail: str = "") -> list[TreeDownloadCommand]:
        """The owner refused a request, or we refuse to go on (``no_clobber``)."""
        return self._fail(failure, detail or failure.value)

    def owner_lost(self, detail: str = "") -> list[TreeDownloadCommand]:
        """The owner cannot be reached at all."""
        return self._fail(Failure.LOST, detail or "owner lost")

    def owner_gone(self, now: float, detail: str = "") -> list[TreeDownloadCommand]:
        """The owner's site went away: wait ``owner_wait`` seconds for it, then fail."""
        if not self.finished and self._away_since is None:
            self._away_since, self._away_detail = now, detail or "owner lost"
        return []

    def owner_back(self, now: float) -> list[TreeDownloadCommand]:
        """The owner's site is back: check it still shares the tree, and resend every
        request in flight."""
        if self.finished or self._away_since is None:
            return []
        self._away_since = None
        for want in self._pending.values():
            want.deadline = now + self._timeout
        return [CheckShared(), *(want.command for want in self._pending.values())]

    def abort_requested(self) -> list[TreeDownloadCommand]:
        """Our caller aborted the download."""
        if self.finished:
            return []
        self._move(TreeDlState.ABORTED)
        self._pending.clear()
        return [Finish(TreeDlState.ABORTED, Failure.ABORTED, "aborted")]

    def time_passed(self, now: float) -> list[TreeDownloadCommand]:
        """Resend every request past its deadline, or fail once one ran out of retries."""
        if self._away_since is not None:
            if not self.finished and now - self._away_since >= self.owner_wait:
                return self._fail(Failure.LOST, f"{self._away_detail}; not back "
                                  f"within {self.owner_wait:g} s")
            return []
        out: list[TreeDownloadCommand] = []
        for want in list(self._pending.values()):
            if want.deadline > now:
                continue
            if want.sends > self._retries:
                return self._fail(Failure.TIMEOUT, f"no answer after {want.sends} requests")
            want.sends += 1
            want.deadline = now + self._timeout
            if isinstance(want.command, RequestChunk):
                want.command = RequestChunk(want.command.offset, want.length, self._mark())
            out.append(want.command)
        return out

    # -- internals

    def _file_size(self, file: int) -> int:
        assert self.manifest is not None
        return self.manifest.file(file).size

    def _manifest_loaded(self, manifest: Manifest) -> list[TreeDownloadCommand]:
        if self.state is not TreeDlState.MANIFEST:
            return []
        if len(manifest.files) != self._files or manifest.size != self._size:
            return self._fail(Failure.PROTOCOL, "the manifest does not match the tree's info")
        self.manifest = manifest
        self.layout = Layout(manifest.sizes())
        self._move(TreeDlState.PREPARING)
        return [Prepare(manifest, self.key)]

    def _next_step(self, now: float) -> list[TreeDownloadCommand]:
        """Go on once what the current state waits for has come."""
        if self.state is TreeDlState.CHECKING and not self._pending:
            return self._plan()
        if self.state is TreeDlState.VERIFYING and self._digests is not None:
            return self._check_files()
        return []

    def _plan(self) -> list[TreeDownloadCommand]:
        assert self.layout is not None
        for o in self._offers.values():
            size = self._file_size(o.file)
            if o.length == size:
                ok = self._digests is not None and self._digests[o.file] == o.digest
            else:
                ok = self._owner_ranges.get((self.layout.begin_of(o.file), o.length)) == o.digest
            if ok:
                self.held[o.file] = o.length
        sizes = self.layout.sizes
        ranges: list[tuple[int, int]] = []
        for file, size in enumerate(sizes):
            begin = self.layout.begin_of(file) + self.held.get(file, 0)
            end = self.layout.end_of(file)
            if begin == end:
                continue
            if ranges and ranges[-1][1] == begin:
                ranges[-1] = (ranges[-1][0], end)
            else:
                ranges.append((begin, end))
        self._ranges = ranges
        self._next = ranges[0][0] if ranges else self.layout.size
        return [ApplyPlan(Layout(sizes, [self.held.get(f, 0) for f in range(len(sizes))]),
                          dict(self.held))]

    def _fill(self, now: float) -> list[TreeDownloadCommand]:
        out: list[TreeDownloadCommand] = []
        while self._chunks_pending() < self._window and self._range < len(self._ranges):
            end = self._ranges[self._range][1]
            length = min(self._chunk, end - self._next)
            offset = self._next
            self._next += length
            if self._next == end:
                self._range += 1
                if self._range < len(self._ranges):
                    self._next = self._ranges[self._range][0]
            self._pending[offset] = _Pending(RequestChunk(offset, length, 0), length,
                                             now + self._timeout)
            request = RequestChunk(offset, length, self._mark())
            self._pending[offset].command = request
            out.append(request)
        return out

    def _chunks_pending(self) -> int:
        return sum(1 for key in self._pending if isinstance(key, int))

    def _mark(self) -> int:
        """Our lowest missing byte that we need: all we need below it has arrived."""
        assert self.layout is not None
        pending = [k for k in self._pending if isinstance(k, int)]
        if pending:
            return min(pending)
        return self._next if self._range < len(self._ranges) else self.layout.size

    def _verify(self, now: float) -> list[TreeDownloadCommand]:
        self._move(TreeDlState.VERIFYING)
        if self._digests is None:
            if not self._files:
                self._digests = []
            else:
                return self._ask_section(Section.DIGESTS, now)
        return self._check_files()

    def _check_files(self) -> list[TreeDownloadCommand]:
        assert self._digests is not None and self.layout is not None
        fetched = tuple(f for f in range(self._files)
                        if self.held.get(f, 0) < self.layout.sizes[f])
        return [Verify(fetched, tuple(self._digests))]

    def _ask_section(self, section: Section, now: float) -> list[TreeDownloadCommand]:
        out: list[TreeDownloadCommand] = []
        total = self._sections[section]
        for offset in range(0, total, self._chunk):
            length = min(self._chunk, total - offset)
            out.append(self._send(("meta", section, offset), RequestMeta(section, offset, length),
                                  length, now))
        return out

    def _send(self, key: Hashable, command: TreeDownloadCommand, length: int,
              now: float) -> TreeDownloadCommand:
        self._pending[key] = _Pending(command, length, now + self._timeout)
        return command

    def _fail(self, failure: Failure, detail: str) -> list[TreeDownloadCommand]:
        if self.finished:
            return []
        self._move(TreeDlState.FAILED)
        self._pending.clear()
        return [Finish(TreeDlState.FAILED, failure, detail)]

    def _move(self, new: TreeDlState) -> None:
        self.state = move(TREE_DL_TRANSITIONS, self.state, new, "tree download")
