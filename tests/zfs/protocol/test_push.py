"""Tests of the pure push protocol: edge cases, then a sender and receivers joined by
an in-memory link that drops, duplicates and reorders, driven by hypothesis."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zfs.protocol.errors import Failure, LocalProtocolError
from zfs.protocol.push import receiver as rx
from zfs.protocol.push import sender as tx

# ------------------------------------------------------------------ a fake world


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Receiver:
    """A receiver core with a fake shell: files in memory, commits recorded."""

    site: str
    core: rx.PushReceiver = field(default_factory=rx.PushReceiver)
    files: Dict[Any, bytearray] = field(default_factory=dict)
    names: Dict[Any, str] = field(default_factory=dict)
    committed: List[Tuple[str, bytes]] = field(default_factory=list)

    def run(self, cmds: List[Any], world: "World", payload: bytes = b"") -> None:
        while cmds:
            cmd = cmds.pop(0)
            if isinstance(cmd, rx.CreateFile):
                self.files[cmd.key] = bytearray()
                self.names[cmd.key] = cmd.name
                cmds += self.core.file_created(cmd.key, world.now)
            elif isinstance(cmd, rx.WriteChunk):
                buf = self.files[cmd.key]
                assert len(buf) == cmd.offset
                buf += payload
                cmds += self.core.chunk_written(cmd.key, cmd.offset, len(payload), world.now)
            elif isinstance(cmd, rx.CommitFile):
                data = bytes(self.files.pop(cmd.key))
                if len(data) == cmd.size and digest(data) == cmd.digest:
                    self.committed.append((self.names[cmd.key], data))
                    cmds += self.core.committed(cmd.key, world.now)
                else:
                    cmds += self.core.commit_failed(cmd.key, "mismatch", world.now)
            elif isinstance(cmd, rx.Discard):
                self.files.pop(cmd.key, None)
            else:
                world.to_sender(self.site, cmd)

    def deliver(self, msg: Tuple[Any, ...], world: "World") -> None:
        key = ("S/send", "sid")
        now = world.now
        kind = msg[0]
        if kind == "open":
            _, name, size, chunk_size = msg
            self.run(self.core.open_received(key, name, size, chunk_size, "ch", "tp", now), world)
        elif kind == "chunk":
            _, offset, data = msg
            self.run(self.core.chunk_received(key, offset, len(data), now), world, data)
        elif kind == "end":
            _, size, dig = msg
            self.run(self.core.end_received(key, size, dig, now), world)
        elif kind == "abort":
            self.run(self.core.abort_received(key, msg[1], now), world)


@dataclass
class World:
    """A sender core, receiver cores and the link between them."""

    data: bytes
    sender: tx.PushSender
    receivers: Dict[str, Receiver]
    name: str = "f.bin"
    now: float = 0.0
    link: List[Tuple[str, Tuple[Any, ...]]] = field(default_factory=list)  # (to, msg)
    finished: Optional[tx.Finished] = None
    chunk: bytes = b""

    def to_sender(self, site: str, cmd: Any) -> None:
        self.link.append(("S", (site, cmd)))

    def run_sender(self, cmds: List[Any]) -> None:
        while cmds:
            cmd = cmds.pop(0)
            if isinstance(cmd, tx.SendOpen):
                for t in cmd.targets:
                    self.link.append((t, ("open", self.name, cmd.size, cmd.chunk_size)))
            elif isinstance(cmd, tx.ReadChunk):
                self.chunk = self.data[cmd.offset:cmd.offset + cmd.length]
                cmds += self.sender.chunk_read(cmd.offset, len(self.chunk), self.now)
            elif isinstance(cmd, tx.SendChunk):
                assert len(self.chunk) == cmd.length
                for t in cmd.targets:
                    self.link.append((t, ("chunk", cmd.offset, self.chunk)))
            elif isinstance(cmd, tx.SendEnd):
                for t in cmd.targets:
                    self.link.append((t, ("end", cmd.size, digest(self.data[:cmd.size]))))
            elif isinstance(cmd, tx.SendAbort):
                for t in cmd.targets:
                    self.link.append((t, ("abort", cmd.reason)))
            elif isinstance(cmd, tx.Finished):
                assert self.finished is None
                self.finished = cmd

    def deliver_to_sender(self, site: str, cmd: Any) -> None:
        s, now = self.sender, self.now
        if isinstance(cmd, rx.Accept):
            self.run_sender(s.accepted(site, now))
        elif isinstance(cmd, rx.Refuse):
            self.run_sender(s.refused(site, cmd.reason, now))
        elif isinstance(cmd, rx.SendAck):
            self.run_sender(s.ack_received(site, cmd.received, now))
        elif isinstance(cmd, rx.SendDone):
            self.run_sender(s.done_received(site, now))
        elif isinstance(cmd, rx.SendError):
            self.run_sender(s.failure_received(site, cmd.failure, cmd.reason, now))

    def deliver(self, index: int) -> None:
        to, msg = self.link.pop(index)
        if to == "S":
            self.deliver_to_sender(*msg)
        else:
            self.receivers[to].deliver(msg, self)

    def tick(self, dt: float) -> None:
        self.now += dt
        self.run_sender(self.sender.time_passed(self.now))
        for r in self.receivers.values():
            r.run(r.core.time_passed(self.now), self)

    def settle(self) -> None:
        """Deliver everything in order with no faults, letting time pass, until quiet."""
        for _ in range(10_000):
            if self.link:
                self.deliver(0)
            elif self.finished is None or any(r.core.streams for r in self.receivers.values()):
                self.tick(30.0)
            else:
                return
        raise AssertionError("the protocol did not settle")


def make_world(data: bytes, n_targets: int, chunk_size: int, window: int,
               known_size: bool = True, max_size: int = 1 << 40) -> World:
    names = [f"t{i}" for i in range(n_targets)]
    sender = tx.PushSender(names, chunk_size=chunk_size, window_chunks=window, chunk_timeout=10.0,
                          size=len(data) if known_size else None)
    receivers = {}
    for n in names:
        r = Receiver(n)
        r.core.registration_added("ch", "tp", rx.Limits(max_size=max_size, max_chunk_size=64,
                                                       inactivity_timeout=20.0))
        receivers[n] = r
    world = World(data, sender, receivers)
    world.run_sender(sender.start(world.now))
    return world


def check_invariants(world: World, faults: int) -> None:
    assert world.finished is not None
    for r in world.receivers.values():
        assert r.core.streams == ()
        assert r.files == {}
        for name, data in r.committed:
            assert name == world.name and data == world.data
        assert len(r.committed) <= 1
    if world.finished.ok:
        assert all(len(r.committed) == 1 for r in world.receivers.values())
    if faults == 0:
        assert world.finished.ok, world.finished


# ------------------------------------------------------------------ hypothesis


def distinct_bytes(size: int) -> bytes:
    """Bytes in which no two chunks are equal, so a swapped chunk cannot go unseen."""
    return b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest()
                    for i in range(size // 32 + 1))[:size]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.integers(0, 200), n_targets=st.integers(1, 4),
       chunk_size=st.integers(1, 32), window=st.integers(1, 4), known=st.booleans(),
       script=st.data())
def test_any_link_faults_never_commit_wrong_bytes_and_always_end(
        size: int, n_targets: int, chunk_size: int, window: int, known: bool,
        script: st.DataObject) -> None:
    world = make_world(distinct_bytes(size), n_targets, chunk_size, window, known)
    faults, budget = 0, script.draw(st.integers(1, 3), label="fault budget")
    for _ in range(500):
        if not world.link:
            break
        action = script.draw(st.sampled_from(
            ["deliver"] * 4 + ["reorder"] * 3 + ["duplicate", "drop", "tick"] * 2 + ["lose"]),
            label="action")
        if action == "deliver" or faults >= budget:
            world.deliver(0)
            continue
        faults += 1
        i = script.draw(st.integers(0, len(world.link) - 1), label="index")
        if action == "reorder":
            world.deliver(i)
        elif action == "drop":
            world.link.pop(i)
        elif action == "duplicate":
            world.link.insert(i, world.link[i])
        elif action == "tick":
            world.tick(script.draw(st.floats(0.0, 4.0), label="dt"))
        elif action == "lose":
            world.run_sender(world.sender.target_lost(
                script.draw(st.sampled_from(sorted(world.receivers))), "gone", world.now))
    world.settle()
    check_invariants(world, faults)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300), n_targets=st.integers(1, 4),
       chunk_size=st.integers(1, 64), window=st.integers(1, 8), known=st.booleans())
def test_a_clean_link_always_delivers(data: bytes, n_targets: int, chunk_size: int,
                                      window: int, known: bool) -> None:
    world = make_world(data, n_targets, chunk_size, window, known)
    world.settle()
    check_invariants(world, 0)
    assert world.now == 0.0          # no timeout was needed


# ------------------------------------------------------------------ edge cases


def test_window_bounds_chunks_in_flight_at_the_slowest_target() -> None:
    world = make_world(bytes(100), 2, chunk_size=10, window=3)
    for _ in range(2):
        world.deliver(0)            # opens
    for _ in range(2):
        world.deliver(0)            # accepts
    chunks = [m for to, m in world.link if to == "t0" and m[0] == "chunk"]
    assert [m[1] for m in chunks] == [0, 10, 20]
    # t0 acks everything it gets; t1 gets nothing: the window stays at 3 chunks
    while any(to == "t0" or to == "S" for to, _ in world.link):
        i = next(i for i, (to, _) in enumerate(world.link) if to in ("t0", "S"))
        world.deliver(i)
    assert world.sender.sent_end == 30


def test_unregistered_topic_is_refused_and_fails_naming_the_target() -> None:
    world = make_world(b"abc", 2, 8, 2)
    world.receivers["t1"].core.registration_removed("ch", "tp")
    world.settle()
    assert world.finished == tx.Finished(False, "t1", Failure.REFUSED,
                                        "no receiver registered for this channel/topic")
    assert world.receivers["t0"].committed == []


@pytest.mark.parametrize("name", ["../x", "a/b", "", "..", "a\0b", "/abs"])
def test_hostile_names_are_refused(name: str) -> None:
    world = make_world(b"abc", 1, 8, 2)
    world.name = name
    world.link = [(to, ("open", name, *m[2:])) for to, m in world.link]
    world.settle()
    assert world.finished is not None and world.finished.failure == Failure.REFUSED


def test_declared_size_over_the_limit_is_refused() -> None:
    world = make_world(bytes(50), 1, 8, 2, max_size=49)
    world.settle()
    assert world.finished.failure == Failure.REFUSED


def test_unknown_size_stream_over_the_limit_is_stopped() -> None:
    world = make_world(bytes(50), 1, 8, 2, known_size=False, max_size=40)
    world.settle()
    assert world.finished.failure == Failure.PROTOCOL and world.receivers["t0"].files == {}


def test_lost_target_aborts_the_others_at_once() -> None:
    world = make_world(bytes(100), 3, 10, 2)
    for _ in range(6):
        world.deliver(0)
    world.run_sender(world.sender.target_lost("t1", "heartbeat", world.now))
    assert world.finished == tx.Finished(False, "t1", Failure.LOST, "heartbeat")
    aborts = [to for to, m in world.link if m[0] == "abort"]
    assert sorted(aborts) == ["t0", "t2"]


def test_silent_target_times_out_after_chunk_timeout_only() -> None:
    world = make_world(bytes(10), 1, 10, 1)
    world.link.clear()                     # the open is lost
    world.tick(9.0)
    assert world.finished is None
    world.tick(1.5)
    assert world.finished == tx.Finished(False, "t0", Failure.TIMEOUT, "no answer within 10 s")


def test_receiver_expires_an_idle_stream() -> None:
    r = rx.PushReceiver()
    r.registration_added("c", "t", rx.Limits(inactivity_timeout=5.0))
    key = ("s/a", "1")
    cmds = r.open_received(key, "f", 10, 4, "c", "t", 0.0)
    assert cmds == [rx.CreateFile(key, "f", ("c", "t"))]
    assert r.file_created(key, 0.0) == [rx.Accept(key)]
    assert r.time_passed(4.0) == []
    assert r.time_passed(6.0) == [rx.SendError(key, Failure.TIMEOUT, "no activity for 6.0 s"),
                                  rx.Discard(key, "no activity for 6.0 s")]
    assert r.streams == ()


def test_chunk_after_abort_gets_an_unknown_stream_error() -> None:
    r = rx.PushReceiver()
    r.registration_added("c", "t", rx.Limits())
    key = ("s/a", "1")
    r.open_received(key, "f", 10, 4, "c", "t", 0.0)
    r.file_created(key, 0.0)
    assert r.abort_received(key, "bye", 0.0) == [rx.Discard(key, "aborted by sender: bye")]
    assert r.chunk_received(key, 0, 4, 0.0) == [rx.SendError(key, Failure.PROTOCOL, "unknown stream")]


def test_too_many_streams_are_refused() -> None:
    r = rx.PushReceiver(max_streams=1)
    r.registration_added("c", "t", rx.Limits())
    r.open_received(("a", "1"), "f", 1, 1, "c", "t", 0.0)
    assert isinstance(r.open_received(("a", "2"), "g", 1, 1, "c", "t", 0.0)[0], rx.Refuse)


def test_one_site_gets_only_its_share_of_streams() -> None:
    r = rx.PushReceiver(max_streams=10, max_streams_per_site=2)
    r.registration_added("c", "t", rx.Limits())
    for sid in ("1", "2"):
        r.open_received(("greedy/sender", sid), f"f{sid}", 1, 1, "c", "t", 0.0)
    (refusal,) = r.open_received(("greedy/other", "3"), "g", 1, 1, "c", "t", 0.0)
    assert isinstance(refusal, rx.Refuse) and "from site greedy" in refusal.reason
    assert isinstance(r.open_received(("polite/sender", "1"), "h", 1, 1, "c", "t", 0.0)[0],
                      rx.CreateFile)


def test_misuse_by_the_shell_raises_locally() -> None:
    s = tx.PushSender(["a"], chunk_size=4, window_chunks=1, chunk_timeout=1.0, size=8)
    s.start(0.0)
    with pytest.raises(LocalProtocolError):
        s.chunk_read(0, 4, 0.0)            # no ReadChunk was asked for
    with pytest.raises(LocalProtocolError):
        tx.PushSender(["a", "a"], chunk_size=4, window_chunks=1, chunk_timeout=1.0)


def test_source_that_shrinks_fails_the_send() -> None:
    s = tx.PushSender(["a"], chunk_size=4, window_chunks=2, chunk_timeout=1.0, size=8)
    s.start(0.0)
    assert s.accepted("a", 0.0) == [tx.ReadChunk(0, 4)]
    cmds = s.chunk_read(0, 2, 0.0)
    assert cmds[-1] == tx.Finished(False, None, Failure.CHANGED,
                                  "source shrank: 2 bytes at 0, 4 expected")


def test_zero_byte_file_sends_only_the_end() -> None:
    s = tx.PushSender(["a"], chunk_size=4, window_chunks=2, chunk_timeout=1.0, size=0)
    s.start(0.0)
    assert s.accepted("a", 0.0) == [tx.SendEnd(("a",), 0)]
    assert s.done_received("a", 0.0) == [tx.Finished(True)]


def test_streams_of_a_lost_sender_site_are_discarded() -> None:
    r = rx.PushReceiver()
    r.registration_added("c", "t", rx.Limits())
    for key in [("a/s1", "1"), ("a/s2", "2"), ("ab/s", "3")]:
        r.open_received(key, "f" + key[1], 10, 4, "c", "t", 0.0)
    assert r.site_lost("a", 1.0) == [rx.Discard(("a/s1", "1"), "sender site a lost"),
                                     rx.Discard(("a/s2", "2"), "sender site a lost")]
    assert r.streams == (("ab/s", "3"),)


def test_a_receiver_acks_once_per_half_window_and_at_the_end() -> None:
    r = rx.PushReceiver()
    r.registration_added("ch", "tp", rx.Limits())
    key = ("S/send", "sid")
    (create,) = r.open_received(key, "f", 10, 1, "ch", "tp", 0.0, window_chunks=8)
    r.file_created(key, 0.0)
    acks = []
    for offset in range(10):
        r.chunk_received(key, offset, 1, 0.0)
        acks += [c.received for c in r.chunk_written(key, offset, 1, 0.0)
                 if isinstance(c, rx.SendAck)]
    assert acks == [4, 8, 10]
