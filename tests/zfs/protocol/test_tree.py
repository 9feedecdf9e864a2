"""Tests of the pure tree cores: paths, the manifest, the virtual stream and its plans, a
tree push (sender and targets joined by a link) and a tree pull (a download and the
owner's book joined by a lossy link), driven by hypothesis.

Digests here are md5 (32 hex characters, the width of the tree's per-file digests).
"""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zfs.protocol.errors import Failure, RemoteProtocolError
from zfs.protocol.pull import owner as ow
from zfs.protocol.pull import serving as sv
from zfs.protocol.pull.tree import commands as steps
from zfs.protocol.pull.tree import download as td
from zfs.protocol.push import sender as stream
from zfs.protocol.push.tree import receiver as rx
from zfs.protocol.push.tree import receiving
from zfs.protocol.push.tree import sender as tx
from zfs.protocol.tree.layout import (Layout, Offer, pack_digests, pack_offers, pack_plan,
                                      plan_starts, unpack_digests, unpack_offers, unpack_plan)
from zfs.protocol.tree.manifest import Entry, Kind, Manifest, decode
from zfs.protocol.tree.paths import link_problem, path_problem
from zfs.protocol.wire import Section, Status


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tree(sizes: list[int], nested: bool = True) -> Manifest:
    """A manifest: files f0, f1, ... (every third in a folder "d"), an empty folder, a link."""
    entries = [Entry("", Kind.DIR, 0o755, 1)]
    if nested:
        entries.append(Entry("d", Kind.DIR, 0o750, 2))
        entries += [Entry(f"d/f{i:03d}", Kind.FILE, 0o644, 3, size)
                    for i, size in enumerate(sizes) if i % 3 == 0]
        entries.append(Entry("e", Kind.DIR, 0o700, 4))
        entries += [Entry(f"f{i:03d}", Kind.FILE, 0o600, 5, size)
                    for i, size in enumerate(sizes) if i % 3]
        entries.append(Entry("l", Kind.LINK, 0o777, 6, 0, "d"))
    else:
        entries += [Entry(f"f{i:03d}", Kind.FILE, 0o644, 3, size) for i, size in enumerate(sizes)]
    return Manifest(tuple(entries))


def contents(manifest: Manifest, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for size in manifest.sizes()]


# ---- paths ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["a", "a/b", "a.b/c-d_e", "é/ü", "x" * 255])
def test_plain_relative_paths_are_accepted(path: str) -> None:
    assert path_problem(path) is None


@pytest.mark.parametrize("path", ["", "/a", "a/", "a//b", "..", "a/../b", "a/./b", ".",
                                  "a\\b", "a\0b", ".zfs-partial", "a/.zfs-partial",
                                  "x" * 256, "/".join(["a"] * 129), 7, None])
def test_unsafe_paths_are_refused(path: Any) -> None:
    assert path_problem(path) is not None


@pytest.mark.parametrize(("path", "target"), [
    ("l", "a"), ("l", "a/b"), ("d/l", "../a"), ("d/e/l", "../../a/b"), ("d/l", ".."),
    ("d/l", "e")])
def test_links_that_stay_inside_are_accepted(path: str, target: str) -> None:
    assert link_problem(path, target) is None


@pytest.mark.parametrize(("path", "target"), [
    ("l", "/etc/passwd"), ("l", ".."), ("l", "../a"), ("d/l", "../../a"), ("d/l", "a/../.."),
    ("d/l", "a/../b"), ("l", ""), ("l", "a//b"), ("l", "./a"), ("l", "a\0b"), ("l", 5)])
def test_links_that_could_lead_out_are_refused(path: str, target: Any) -> None:
    assert link_problem(path, target) is not None


# ---- manifest ------------------------------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(sizes=st.lists(st.integers(0, 2**40), max_size=12), nested=st.booleans())
def test_a_manifest_round_trips(sizes: list[int], nested: bool) -> None:
    manifest = tree(sizes, nested)
    again = decode(manifest.encode())
    assert again == manifest and again.size == sum(sizes)
    assert sorted(again.sizes()) == sorted(sizes)


def _raw(entries: list[tuple[bytes, int, int, int, str, str]]) -> bytes:
    """A manifest's bytes, written without any check (what a hostile peer can send)."""
    out = [struct.pack(">4sI", b"ZFT1", len(entries))]
    for kind, mode, mtime, size, path, target in entries:
        raw = path.encode()
        out.append(struct.pack(">cHqQH", kind, mode, mtime, size, len(raw)) + raw)
        if kind == b"l":
            out.append(struct.pack(">H", len(target.encode())) + target.encode())
    return b"".join(out)


ROOT = (b"d", 0o755, 0, 0, "", "")


@pytest.mark.parametrize("entries", [
    [ROOT, (b"f", 0o644, 0, 1, "..", "")],
    [ROOT, (b"f", 0o644, 0, 1, "../escape", "")],
    [ROOT, (b"f", 0o644, 0, 1, "/etc/passwd", "")],
    [ROOT, (b"d", 0o755, 0, 0, "a", ""), (b"f", 0o644, 0, 1, "a/../../x", "")],
    [ROOT, (b"f", 0o644, 0, 1, "a/b", "")],                        # no folder a
    [ROOT, (b"f", 0o644, 0, 1, "a", ""), (b"f", 0o644, 0, 1, "a/b", "")],   # a file is no folder
    [ROOT, (b"l", 0o777, 0, 0, "a", "."), (b"f", 0o644, 0, 1, "a/b", "")],  # nor a link
    [ROOT, (b"f", 0o644, 0, 1, "b", ""), (b"f", 0o644, 0, 1, "a", "")],     # out of order
    [ROOT, (b"f", 0o644, 0, 1, "a", ""), (b"f", 0o644, 0, 1, "a", "")],     # twice
    [ROOT, (b"l", 0o777, 0, 0, "a", "../up")],
    [ROOT, (b"l", 0o777, 0, 0, "a", "/abs")],
    [ROOT, (b"d", 0o755, 0, 5, "a", "")],                           # a folder with a size
    [ROOT, (b"f", 0o644, 0, 1, ".zfs-partial", "")],
    [(b"f", 0o644, 0, 0, "", "")],                                  # no root folder
    [ROOT, ROOT],
    [ROOT, (b"x", 0o644, 0, 1, "a", "")],                           # no such kind
])
def test_a_hostile_manifest_is_refused(entries: list[Any]) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(_raw(entries))


def test_a_manifest_of_the_wrong_shape_is_refused() -> None:
    good = tree([1, 2]).encode()
    for data in (b"", b"ZFT2" + good[4:], good[:-1], good + b"x", good[:8]):
        with pytest.raises(RemoteProtocolError):
            decode(data)
    with pytest.raises(RemoteProtocolError):
        decode(good, max_entries=2)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_decode_never_raises_anything_but_a_remote_error(data: bytes) -> None:
    try:
        decode(b"ZFT1" + data)
    except RemoteProtocolError:
        pass


# ---- the stream and its plans --------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(data=st.data(), sizes=st.lists(st.integers(0, 20), max_size=8))
def test_pieces_cover_exactly_the_range_of_the_planned_stream(data: st.DataObject,
                                                              sizes: list[int]) -> None:
    starts = [data.draw(st.integers(0, size)) for size in sizes]
    layout = Layout(sizes, starts)
    files = [bytes((i * 31 + j) % 256 for j in range(size)) for i, size in enumerate(sizes)]
    whole = b"".join(f[s:] for f, s in zip(files, starts))
    assert layout.size == len(whole)
    offset = data.draw(st.integers(0, layout.size))
    length = data.draw(st.integers(0, layout.size - offset))
    got = bytearray(length)
    for piece in layout.pieces(offset, length):
        assert piece.offset >= starts[piece.file] and piece.length > 0
        got[piece.at:piece.at + piece.length] = \
            files[piece.file][piece.offset:piece.offset + piece.length]
    assert bytes(got) == whole[offset:offset + length]
    assert layout.files_done(layout.size) == len(sizes)


def test_the_stream_starts_each_file_at_the_least_any_receiver_holds() -> None:
    assert plan_starts([5, 5, 5], [{0: 5, 1: 2}, {0: 5, 1: 4, 2: 1}]) == [5, 2, 0]
    assert plan_starts([3], []) == [0]


def test_offers_plans_and_digests_round_trip_and_refuse_lies() -> None:
    sizes = [10, 0, 7]
    offers = [Offer(0, 10, md5(b"a")), Offer(2, 3, md5(b"b"))]
    assert unpack_offers(pack_offers(offers), sizes) == offers
    for bad in ([Offer(1, 1, md5(b""))], [Offer(0, 11, md5(b""))], [Offer(3, 1, md5(b""))],
                [Offer(0, 1, md5(b"")), Offer(0, 2, md5(b""))]):
        with pytest.raises(RemoteProtocolError):
            unpack_offers(pack_offers(bad), sizes)
    with pytest.raises(RemoteProtocolError):
        unpack_offers(pack_offers(offers)[:-1], sizes)
    assert unpack_plan(pack_plan([10, 0, 2], {0: 10, 2: 3}), sizes) == ([10, 0, 2], {0: 10, 2: 3})
    with pytest.raises(RemoteProtocolError):
        unpack_plan(pack_plan([0, 0, 5], {2: 3}), sizes)      # starts past what is held
    digests = [md5(b"x"), md5(b"y")]
    assert unpack_digests(pack_digests(digests), 2) == digests
    with pytest.raises(RemoteProtocolError):
        unpack_digests(b"z" * 64, 2)


# ---- a tree push: a sender core and target cores joined by a link --------------------

KEY = ("S/send", "sid")
OPENING = receiving.Opening("t", "k", 0, 0, 64, "ch", "tp", False, True)


@dataclass
class Target:
    """A target core with a fake shell: what it held before, what its staging holds."""

    site: str
    held: dict[int, bytes]
    core: rx.TreeReceiver = field(default_factory=rx.TreeReceiver)
    disk: dict[int, bytearray] = field(default_factory=dict)
    stream: bytearray = field(default_factory=bytearray)
    layout: Optional[Layout] = None
    own: dict[int, int] = field(default_factory=dict)
    committed: Optional[list[bytes]] = None
    released: bool = False

    def run(self, cmds: list[Any], world: PushWorld, payload: bytes = b"") -> None:
        queue = list(cmds)
        while queue:
            cmd = queue.pop(0)
            now = world.now
            if isinstance(cmd, receiving.Prepare):
                sizes = cmd.manifest.sizes()
                offers = [Offer(f, len(b), md5(b)) for f, b in sorted(self.held.items())
                          if 0 < len(b) <= sizes[f]]
                queue += self.core.prepared(cmd.key, offers, now)
            elif isinstance(cmd, receiving.ApplyPlan):
                self.layout, self.own = cmd.layout, dict(cmd.own)
                self.disk = {f: bytearray(self.held[f][:self.own[f]]) if self.own.get(f)
                             else bytearray() for f in range(len(cmd.layout.sizes))}
                queue += self.core.plan_applied(cmd.key, now)
            elif isinstance(cmd, receiving.WriteChunk):
                assert self.layout is not None
                self.stream += payload
                for piece in self.layout.pieces(cmd.offset, len(payload)):
                    data = payload[piece.at:piece.at + piece.length]
                    own = self.own.get(piece.file, 0)
                    skip = max(0, own - piece.offset)
                    disk = self.disk[piece.file]
                    end = piece.offset + piece.length
                    if skip < piece.length:
                        disk.extend(bytes(max(0, end - len(disk))))
                        disk[piece.offset + skip:end] = data[skip:]
                queue += self.core.chunk_written(cmd.key, cmd.offset, len(payload), now)
            elif isinstance(cmd, receiving.CommitTree):
                if md5(bytes(self.stream)) == cmd.digest:
                    self.committed = [bytes(self.disk[f]) for f in sorted(self.disk)]
                    queue += self.core.committed(cmd.key, now)
                else:
                    queue += self.core.commit_failed(cmd.key, "digest", now)
            elif isinstance(cmd, (receiving.Release, receiving.Discard)):
                self.released = True
            else:
                world.to_sender(self.site, cmd)

    def deliver(self, msg: tuple[Any, ...], world: PushWorld) -> None:
        kind, now = msg[0], world.now
        if kind == "open":
            self.run(self.core.open_received(KEY, msg[1], msg[2], now), world)
        elif kind == "plan":
            self.run(self.core.plan_received(KEY, msg[1], msg[2], now), world)
        elif kind == "chunk":
            self.run(self.core.chunk_received(KEY, msg[1], len(msg[2]), now), world, msg[2])
        elif kind == "end":
            self.run(self.core.end_received(KEY, msg[1], msg[2], now), world)
        elif kind == "abort":
            self.run(self.core.abort_received(KEY, msg[1], now), world)


@dataclass
class PushWorld:
    """A tree sender core, target cores and the link (in order per target, interleaved)."""

    manifest: Manifest
    files: list[bytes]
    sender: tx.TreeSender
    targets: dict[str, Target]
    rng: random.Random
    now: float = 0.0
    link: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    finished: Optional[stream.Finished] = None
    chunk: bytes = b""
    sent: bytearray = field(default_factory=bytearray)

    def to_sender(self, site: str, cmd: Any) -> None:
        self.link.append(("S", (site, cmd)))

    def run_sender(self, cmds: list[Any]) -> None:
        queue, s = list(cmds), self.sender
        while queue:
            cmd = queue.pop(0)
            if isinstance(cmd, tx.SendTreeOpen):
                opening = receiving.Opening("t", "k", len(self.manifest.files), self.manifest.size,
                                     s.chunk_size, "ch", "tp", False, True, s.window_chunks)
                for t in cmd.targets:
                    self.link.append((t, ("open", opening, self.manifest.encode())))
            elif isinstance(cmd, tx.CheckOffers):
                queue += s.offers_checked({(f, n): md5(self.files[f][:n]) for f, n in cmd.ranges},
                                          self.now)
            elif isinstance(cmd, tx.SendPlan):
                self.link.append((cmd.target, ("plan", cmd.size, pack_plan(cmd.starts, cmd.own))))
            elif isinstance(cmd, stream.ReadChunk):
                assert s.layout is not None
                buf = bytearray(cmd.length)
                for p in s.layout.pieces(cmd.offset, cmd.length):
                    buf[p.at:p.at + p.length] = self.files[p.file][p.offset:p.offset + p.length]
                self.chunk = bytes(buf)
                self.sent += self.chunk
                queue += s.chunk_read(cmd.offset, cmd.length, self.now)
            elif isinstance(cmd, stream.SendChunk):
                for t in cmd.targets:
                    self.link.append((t, ("chunk", cmd.offset, self.chunk)))
            elif isinstance(cmd, stream.SendEnd):
                for t in cmd.targets:
                    self.link.append((t, ("end", cmd.size, md5(bytes(self.sent)))))
            elif isinstance(cmd, stream.SendAbort):
                for t in cmd.targets:
                    self.link.append((t, ("abort", cmd.reason)))
            elif isinstance(cmd, stream.Finished):
                assert self.finished is None
                self.finished = cmd

    def deliver_to_sender(self, site: str, cmd: Any) -> None:
        s, now = self.sender, self.now
        if isinstance(cmd, receiving.SendOffer):
            self.run_sender(s.offer_received(site, cmd.offers, now))
        elif isinstance(cmd, receiving.SendChecking):
            self.run_sender(s.checking_received(site, now))
        elif isinstance(cmd, receiving.SendAck):
            self.run_sender(s.ack_received(site, cmd.received, now))
        elif isinstance(cmd, receiving.SendDone):
            self.run_sender(s.done_received(site, now))
        elif isinstance(cmd, receiving.SendError):
            self.run_sender(s.failure_received(site, cmd.failure, cmd.reason, now))

    def settle(self) -> None:
        """Deliver in order per destination, destinations interleaved at random."""
        for _ in range(100_000):
            if self.link:
                heads = {}
                for index, (to, _msg) in enumerate(self.link):
                    heads.setdefault(to, index)
                to, msg = self.link.pop(self.rng.choice(sorted(heads.values())))
                if to == "S":
                    self.deliver_to_sender(*msg)
                else:
                    self.targets[to].deliver(msg, self)
            elif self.finished is None:
                self.now += 5.0
                self.run_sender(self.sender.time_passed(self.now))
            else:
                return
        raise AssertionError("the push did not settle")


HOLDINGS = st.sampled_from(["none", "prefix", "bad-prefix", "whole", "bad-whole"])


def _held(files: list[bytes], kinds: list[str]) -> dict[int, bytes]:
    held = {}
    for f, (data, kind) in enumerate(zip(files, kinds)):
        if not data or kind == "none":
            continue
        cut = len(data) if kind.endswith("whole") else max(1, len(data) // 2)
        part = bytearray(data[:cut])
        if kind.startswith("bad"):
            part[0] ^= 0xFF
        held[f] = bytes(part)
    return held


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=7), n_targets=st.integers(1, 3),
       chunk=st.integers(1, 32), window=st.integers(1, 8), seed=st.integers(0, 2**16),
       script=st.data())
def test_a_pushed_tree_arrives_whole_at_every_target_sending_only_what_one_lacks(
        sizes: list[int], n_targets: int, chunk: int, window: int, seed: int,
        script: st.DataObject) -> None:
    manifest = tree(sizes)
    files = contents(manifest, seed)
    names = [f"t{i}" for i in range(n_targets)]
    targets = {}
    for name in names:
        kinds = script.draw(st.lists(HOLDINGS, min_size=len(sizes), max_size=len(sizes)))
        target = Target(name, _held(files, kinds))
        target.core.registration_added("ch", "tp", rx.TreeLimits(max_chunk_size=64))
        targets[name] = target
    sender = tx.TreeSender(names, manifest.sizes(), chunk_size=chunk, window_chunks=window,
                           chunk_timeout=10.0)
    world = PushWorld(manifest, files, sender, targets, random.Random(seed))
    world.run_sender(sender.start(0.0))
    world.settle()
    assert world.finished is not None and world.finished.ok, world.finished
    for target in targets.values():
        assert target.committed == files
        assert target.core.streams == ()
    # Only what some target lacks (verified) travelled, once.
    verified = [min((len(t.held[f]) if f in t.held and files[f].startswith(t.held[f]) else 0)
                    for t in targets.values()) for f in range(len(files))]
    assert len(world.sent) == sum(len(d) - v for d, v in zip(files, verified))


def _open_world(n: int = 2) -> PushWorld:
    manifest = tree([5, 9])
    files = contents(manifest, 1)
    names = [f"t{i}" for i in range(n)]
    targets = {name: Target(name, {}) for name in names}
    for target in targets.values():
        target.core.registration_added("ch", "tp", rx.TreeLimits())
    sender = tx.TreeSender(names, manifest.sizes(), chunk_size=4, window_chunks=2,
                           chunk_timeout=10.0)
    return PushWorld(manifest, files, sender, targets, random.Random(0))


def test_a_target_refusing_the_tree_aborts_the_others_and_names_it() -> None:
    world = _open_world()
    out = world.sender.start(0.0)
    assert out == [tx.SendTreeOpen(("t0", "t1"))]
    out = world.sender.failure_received("t1", Failure.REFUSED, "no room", 1.0)
    assert out == [stream.SendAbort(("t0", "t1"), "t1: no room"),
                   stream.Finished(False, "t1", Failure.REFUSED, "no room")]
    assert world.sender.finished


def test_a_target_digesting_for_long_keeps_the_sender_waiting_then_silence_fails_it() -> None:
    sender = _open_world(1).sender
    sender.start(0.0)
    for now in range(5, 60, 5):
        assert sender.checking_received("t0", float(now)) == []
        assert sender.time_passed(float(now)) == []
    out = sender.time_passed(71.0)
    assert isinstance(out[-1], stream.Finished) and out[-1].failure is Failure.TIMEOUT


def _manifest_bytes(entries: list[Any]) -> bytes:
    return _raw(entries)


@pytest.mark.parametrize(("change", "words"), [
    ({"channel": "other"}, "no receiver registered"),
    ({"name": "../x"}, "path part"),
    ({"files": 3}, "does not match"),
    ({"size": 1 << 41}, "over the limit"),
])
def test_a_receiver_refuses_a_bad_tree_before_making_anything(change: dict[str, Any],
                                                              words: str) -> None:
    core = rx.TreeReceiver()
    core.registration_added("ch", "tp", rx.TreeLimits())
    manifest = tree([3, 4])
    fields = {"name": "t", "key": "k", "files": 2, "size": 7, "chunk_size": 64,
              "channel": "ch", "topic": "tp", "no_clobber": False, "check_existing": True}
    fields.update(change)
    out = core.open_received(KEY, receiving.Opening(**fields), manifest.encode(), 0.0)
    assert len(out) == 1 and isinstance(out[0], receiving.SendError)
    assert out[0].failure is Failure.REFUSED and words in out[0].reason
    assert core.streams == ()


def test_a_receiver_refuses_a_manifest_with_dot_dot_from_a_hostile_sender() -> None:
    core = rx.TreeReceiver()
    core.registration_added("ch", "tp", rx.TreeLimits())
    evil = _manifest_bytes([ROOT, (b"f", 0o644, 0, 4, "../../etc/cron.d/x", "")])
    out = core.open_received(KEY, receiving.Opening("t", "k", 1, 4, 64, "ch", "tp", False, True),
                             evil, 0.0)
    assert out[0].failure is Failure.REFUSED and "bad manifest" in out[0].reason  # type: ignore[union-attr]


def test_a_plan_that_says_we_hold_what_we_never_offered_is_a_protocol_error() -> None:
    core = rx.TreeReceiver()
    core.registration_added("ch", "tp", rx.TreeLimits())
    manifest = tree([3, 4], nested=False)
    core.open_received(KEY, receiving.Opening("t", "k", 2, 7, 64, "ch", "tp", False, True),
                       manifest.encode(), 0.0)
    core.prepared(KEY, [Offer(0, 3, md5(b"abc"))], 0.0)
    out = core.plan_received(KEY, 3, pack_plan([3, 1], {0: 3, 1: 1}), 0.0)
    assert isinstance(out[0], receiving.SendError) and out[0].failure is Failure.PROTOCOL
    assert isinstance(out[1], receiving.Release)


def test_the_same_tree_opened_again_by_its_sender_ends_the_old_stream_keeping_its_bytes() -> None:
    core = rx.TreeReceiver()
    core.registration_added("ch", "tp", rx.TreeLimits())
    manifest = tree([3], nested=False)
    opening = receiving.Opening("t", "k", 1, 3, 64, "ch", "tp", False, True)
    core.open_received(KEY, opening, manifest.encode(), 0.0)
    again = ("S/send2", "sid2")
    out = core.open_received(again, opening, manifest.encode(), 1.0)
    assert [type(c) for c in out] == [receiving.SendError, receiving.Release, receiving.Prepare]
    assert core.streams == (again,)


def test_a_silent_preparing_tree_keeps_its_sender_informed() -> None:
    core = rx.TreeReceiver()
    core.registration_added("ch", "tp", rx.TreeLimits(inactivity_timeout=1.0))
    core.open_received(KEY, receiving.Opening("t", "k", 1, 3, 64, "ch", "tp", False, True),
                       tree([3], nested=False).encode(), 0.0)
    assert core.time_passed(100.0) == [receiving.SendChecking(KEY)]


# ---- a tree pull: a download core and the owner's book, joined by a lossy link -------

@dataclass
class LossyLink:
    rng: random.Random
    drop: float
    dup: float
    queue: list[tuple[str, Any]] = field(default_factory=list)

    def send(self, direction: str, msg: Any) -> None:
        if self.rng.random() < self.drop:
            return
        self.queue.append((direction, msg))
        if self.rng.random() < self.dup:
            self.queue.append((direction, msg))

    def pop(self) -> Optional[tuple[str, Any]]:
        if not self.queue:
            return None
        return self.queue.pop(self.rng.randrange(len(self.queue)))


@dataclass
class Puller:
    """A tree download with a fake shell: its staging folder is a dict of bytearrays."""

    dl: td.TreeDownload
    link: LossyLink
    held: dict[int, bytes]
    disk: dict[int, bytearray] = field(default_factory=dict)
    sections: dict[Section, bytearray] = field(default_factory=dict)
    pending: dict[Any, bytes] = field(default_factory=dict)
    verified: list[int] = field(default_factory=list)
    committed: bool = False

    def run(self, cmds: list[Any], now: float) -> None:
        dl = self.dl
        queue = list(cmds)
        while queue:
            cmd = queue.pop(0)
            if isinstance(cmd, (steps.RequestMeta, steps.RequestRangeDigest, steps.RequestChunk,
                                steps.ReportMark)):
                self.link.send("up", cmd)
            elif isinstance(cmd, steps.StoreMeta):
                body = self.pending.pop(("meta", cmd.section, cmd.offset))
                buf = self.sections.setdefault(cmd.section, bytearray())
                buf.extend(bytes(max(0, cmd.offset + len(body) - len(buf))))
                buf[cmd.offset:cmd.offset + len(body)] = body
            elif isinstance(cmd, steps.LoadSection):
                queue += dl.section_loaded(cmd.section, bytes(self.sections[cmd.section]), now)
            elif isinstance(cmd, steps.Prepare):
                sizes = cmd.manifest.sizes()
                offers = [Offer(f, len(b), md5(b)) for f, b in sorted(self.held.items())
                          if 0 < len(b) <= sizes[f]]
                queue += dl.prepared(offers, now)
            elif isinstance(cmd, steps.ApplyPlan):
                self.disk = {f: bytearray(self.held[f][:n]) if (n := cmd.held.get(f)) else
                             bytearray() for f in range(len(cmd.layout.sizes))}
                queue += dl.plan_applied(now)
            elif isinstance(cmd, steps.WriteChunk):
                body = self.pending.pop(("chunk", cmd.offset))
                assert dl.layout is not None
                for p in dl.layout.pieces(cmd.offset, len(body)):
                    disk = self.disk[p.file]
                    disk.extend(bytes(max(0, p.offset + p.length - len(disk))))
                    disk[p.offset:p.offset + p.length] = body[p.at:p.at + p.length]
            elif isinstance(cmd, steps.Verify):
                self.verified = list(cmd.files)
                bad = [f for f in cmd.files if md5(bytes(self.disk[f])) != cmd.digests[f]]
                queue += dl.verified(bad)
            elif isinstance(cmd, steps.Commit):
                self.committed = True
                queue += dl.committed()


def _owner_answer(shares: ow.Shares, msg: Any, now: float) -> list[Any]:
    to = "b/dl"
    if isinstance(msg, steps.RequestMeta):
        return shares.meta_requested("r", "b", to, msg.section, msg.offset, msg.length, now)
    if isinstance(msg, steps.RequestRangeDigest):
        return shares.range_digest_requested("r", "b", to, msg.offset, msg.length, now)
    if isinstance(msg, steps.RequestChunk):
        return shares.chunk_requested("r", "b", to, msg.offset, msg.length, msg.mark, now)
    return shares.mark_reported("r", "b", to, msg.mark, now)


def run_pull(manifest: Manifest, files: list[bytes], held: dict[int, bytes], seed: int,
             drop: float, dup: float, window: int, chunk: int) -> Puller:
    link = LossyLink(random.Random(seed), drop, dup)
    encoded = manifest.encode()
    stream_bytes = b"".join(files)
    digests = pack_digests([md5(f) for f in files])
    shares = ow.Shares(max_chunk_size=1 << 20, max_inflight_bytes=2 * chunk)
    shares.transaction_opened("t", 1e9, 0.0)
    shares.file_added("t", "r", "tree", manifest.size, 0.0, "key",
                      ow.TreeShape(len(files), len(encoded)))
    info = shares.info_requested("r", "b", "b/dl", 0.0)[0]
    assert isinstance(info, sv.SendTreeInfo)
    puller = Puller(td.TreeDownload(window_chunks=window, chunk_size=chunk, request_timeout=1.0,
                                    retries=1000), link, held)
    now = 0.0
    puller.run(puller.dl.started(info.name, info.key, info.files, info.size,
                                 info.manifest_size, now), now)
    sections = {Section.MANIFEST: encoded, Section.DIGESTS: digests}
    for _ in range(200_000):
        if puller.dl.finished:
            break
        item = link.pop()
        if item is None:
            now += 1.0
            puller.run(puller.dl.time_passed(now), now)
            for answer in shares.time_passed(now):
                if hasattr(answer, "to"):
                    link.send("down", answer)
            continue
        direction, msg = item
        if direction == "up":
            for answer in _owner_answer(shares, msg, now):
                link.send("down", answer)
            continue
        dl = puller.dl
        if isinstance(msg, sv.SendMeta):
            body = sections[msg.section][msg.offset:msg.offset + msg.length]
            puller.pending[("meta", msg.section, msg.offset)] = body
            puller.run(dl.meta_received(msg.section, msg.offset, len(body), now), now)
        elif isinstance(msg, sv.SendRangeDigest):
            puller.run(dl.range_digest_received(
                msg.offset, msg.length, md5(stream_bytes[msg.offset:msg.offset + msg.length]),
                now), now)
        elif isinstance(msg, sv.SendChunk):
            puller.pending[("chunk", msg.offset)] = stream_bytes[msg.offset:msg.offset + msg.length]
            puller.run(dl.chunk_received(msg.offset, msg.length, now), now)
        elif isinstance(msg, sv.Refuse):
            puller.run(dl.refused(msg.failure), now)
    return puller


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=7), seed=st.integers(0, 2**16),
       drop=st.floats(0, 0.3), dup=st.floats(0, 0.3), window=st.integers(1, 5),
       chunk=st.integers(1, 24), script=st.data())
def test_a_pulled_tree_arrives_exact_over_a_lossy_link_from_any_holdings(
        sizes: list[int], seed: int, drop: float, dup: float, window: int, chunk: int,
        script: st.DataObject) -> None:
    manifest = tree(sizes)
    files = contents(manifest, seed)
    kinds = script.draw(st.lists(HOLDINGS, min_size=len(sizes), max_size=len(sizes)))
    puller = run_pull(manifest, files, _held(files, kinds), seed, drop, dup, window, chunk)
    assert puller.dl.state is steps.TreeDlState.DONE, puller.dl.state
    assert puller.committed and [bytes(puller.disk[f]) for f in range(len(files))] == files


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=7), seed=st.integers(0, 2**16),
       script=st.data())
def test_a_pull_moves_only_what_it_does_not_hold_verified(sizes: list[int], seed: int,
                                                         script: st.DataObject) -> None:
    manifest = tree(sizes)
    files = contents(manifest, seed)
    kinds = script.draw(st.lists(HOLDINGS, min_size=len(sizes), max_size=len(sizes)))
    held = _held(files, kinds)
    puller = run_pull(manifest, files, held, seed, 0.0, 0.0, 3, 8)
    good = {f: len(b) for f, b in held.items() if files[f].startswith(b)}
    assert puller.dl.received == sum(len(d) - good.get(f, 0) for f, d in enumerate(files))
    assert puller.dl.held == good
    assert sorted(puller.verified) == [f for f, d in enumerate(files) if good.get(f, 0) < len(d)]


def test_a_tree_pull_refuses_a_manifest_that_does_not_match_its_info() -> None:
    dl = td.TreeDownload(chunk_size=1 << 20)
    manifest = tree([3, 4])
    out = dl.started("t", "k", 2, 8, len(manifest.encode()), 0.0)
    assert all(isinstance(c, steps.RequestMeta) for c in out)
    dl.meta_received(Section.MANIFEST, 0, len(manifest.encode()), 0.0)
    out = dl.section_loaded(Section.MANIFEST, manifest.encode(), 0.0)
    assert out == [steps.Finish(steps.TreeDlState.FAILED, Failure.PROTOCOL,
                             "the manifest does not match the tree's info")]


def test_a_tree_pull_checks_an_owner_back_still_shares_it_and_resends() -> None:
    dl = td.TreeDownload(chunk_size=1 << 20, request_timeout=1.0)
    manifest = tree([3, 4])
    sent = dl.started("t", "k", 2, 8, len(manifest.encode()), 0.0)
    assert dl.owner_gone(0.5, "cut") == [] and dl.time_passed(0.9) == []
    again = dl.owner_back(1.0)
    assert again == [steps.CheckShared(), *sent]          # asked first, then resent
    assert dl.owner_back(1.1) == []                       # not away: nothing to do
    (finish,) = dl.refused(Failure.UNKNOWN, "it shares nothing")
    assert finish == steps.Finish(steps.TreeDlState.FAILED, Failure.UNKNOWN,
                                  "it shares nothing")


@pytest.mark.parametrize(("name", "key", "failure"), [
    ("../t", "k", Failure.UNSAFE_NAME), ("t", "a/b", Failure.UNSAFE_NAME),
    (".zfs-partial", "k", Failure.UNSAFE_NAME)])
def test_a_tree_pull_refuses_unsafe_names_from_the_owner(name: str, key: str,
                                                        failure: Failure) -> None:
    dl = td.TreeDownload()
    out = dl.started(name, key, 1, 1, 10, 0.0)
    assert isinstance(out[0], steps.Finish) and out[0].failure is failure


def test_a_tree_pull_whose_files_differ_at_the_end_fails_as_integrity() -> None:
    manifest = tree([3], nested=False)
    files = [b"abc"]
    puller = run_pull(manifest, files, {}, 1, 0.0, 0.0, 2, 8)
    assert puller.dl.state is steps.TreeDlState.DONE
    dl = td.TreeDownload()
    dl.state = steps.TreeDlState.VERIFYING
    dl.manifest = manifest
    out = dl.verified([0])
    assert isinstance(out[0], steps.Finish) and out[0].failure is Failure.INTEGRITY


def test_the_owner_serves_a_tree_s_pages_and_range_digests_and_refuses_out_of_range() -> None:
    shares = ow.Shares()
    shares.transaction_opened("t", 10.0, 0.0)
    shares.file_added("t", "r", "tree", 100, 0.0, "key", ow.TreeShape(2, 50))
    assert shares.info_requested("r", "b", "b/x", 0.0) == [
        sv.SendTreeInfo("r", "b/x", "tree", "key", 2, 100, 50)]
    assert shares.meta_requested("r", "b", "b/x", Section.MANIFEST, 40, 100, 0.0) == [
        sv.SendMeta("r", "b/x", Section.MANIFEST, 40, 10)]
    assert shares.meta_requested("r", "b", "b/x", Section.DIGESTS, 0, 100, 0.0) == [
        sv.SendMeta("r", "b/x", Section.DIGESTS, 0, 64)]
    assert shares.meta_requested("r", "b", "b/x", Section.MANIFEST, 50, 1, 0.0) == [
        sv.Refuse("r", "b/x", Failure.PROTOCOL)]
    assert shares.range_digest_requested("r", "b", "b/x", 90, 10, 0.0) == [
        sv.SendRangeDigest("r", "b/x", 90, 10)]
    assert shares.range_digest_requested("r", "b", "b/x", 95, 10, 0.0) == [
        sv.Refuse("r", "b/x", Failure.PROTOCOL)]
    out = shares.download_reported("r", "b", "b/x", Status.SUCCESS, 1.0)
    assert out[-1] == sv.Downloaded("t", "r", "b", Status.SUCCESS, "tree")


def test_a_stable_rid_may_be_shared_again_after_its_transaction_ended() -> None:
    shares = ow.Shares()
    shares.transaction_opened("t1", 10.0, 0.0)
    shares.file_added("t1", "r", "f", 5, 0.0)
    shares.transaction_ended("t1", 1.0)
    assert shares.info_requested("r", "b", "b/x", 2.0)[0] == sv.Refuse("r", "b/x",
                                                                        Failure.EXPIRED)
    shares.transaction_opened("t2", 10.0, 2.0)
    shares.file_added("t2", "r", "f", 5, 2.0)
    assert isinstance(shares.info_requested("r", "b", "b/x", 3.0)[0], sv.SendInfo)


def test_while_the_sender_digests_the_offers_the_targets_are_told_to_wait() -> None:
    world = _open_world(1)
    sender, target = world.sender, world.targets["t0"]
    sender.start(0.0)
    target.core.registration_added("ch", "tp", rx.TreeLimits(inactivity_timeout=5.0))
    target.core.open_received(KEY, receiving.Opening("t", "k", 2, 14, 4, "ch", "tp", False, True),
                              world.manifest.encode(), 0.0)
    target.core.prepared(KEY, [Offer(0, 5, md5(world.files[0]))], 0.0)
    out = sender.offer_received("t0", [Offer(0, 5, md5(world.files[0]))], 0.0)
    assert out == [tx.CheckOffers(((0, 5),))]
    for now in (4.0, 8.0, 12.0):
        assert sender.time_passed(now) == [tx.SendChecking(("t0",))]
        assert target.core.checking_received(KEY, now) == []
        assert target.core.time_passed(now) == []
    assert isinstance(target.core.time_passed(18.0)[0], receiving.SendError)   # silence: it ends
