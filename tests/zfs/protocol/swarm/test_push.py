"""The swarm push cores: a sender and relays joined by an in-memory link, clean and faulty."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zfs.protocol.errors import LocalProtocolError
from zfs.protocol.swarm import relay as r
from zfs.protocol.swarm import wire as w
from zfs.protocol.swarm.plan import plan
from zfs.protocol.swarm.sender import Finished, SenderState, SwarmSender

from tests.zfs.protocol.swarm.pushworld import (
    Limits, check_all_or_nothing, distinct_bytes, make_world)


# ---- a clean link ------------------------------------------------------------------

@settings(max_examples=120, deadline=None)
@given(size=st.integers(0, 300), n=st.integers(1, 12), fanout=st.integers(1, 3),
       stripes=st.integers(1, 3), chunk=st.integers(1, 40), window=st.integers(1, 8))
def test_a_clean_link_delivers_the_exact_file_to_every_target(
        size: int, n: int, fanout: int, stripes: int, chunk: int, window: int) -> None:
    world = make_world(distinct_bytes(size), n, fanout, stripes, chunk, window)
    world.settle()
    assert world.finished == Finished(True)
    check_all_or_nothing(world)
    assert world.now == 0.0, "a clean push needed a timeout"


def test_the_sender_sends_each_chunk_once_to_one_root() -> None:
    world = make_world(distinct_bytes(100), 10, fanout=2, chunk_size=10, window=20)
    sent = []
    while world.link:
        frm, to, msg, _ = world.link[0]
        if frm == "S" and isinstance(msg, w.Chunk):
            sent.append((to, msg.index))
        world.deliver(0)
    roots = world.sender.plan.roots
    assert sent == [(roots[i % 2], i) for i in range(10)]
    assert world.finished == Finished(True)


def test_the_window_holds_chunks_beyond_what_every_target_has() -> None:
    world = make_world(distinct_bytes(200), 6, fanout=1, chunk_size=10, window=3)
    last = world.targets[world.sender.plan.trees[0][-1]]
    # everything flows except the chunks that reach the chain's last target
    for _ in range(10_000):
        i = next((i for i, m in enumerate(world.link)
                  if m[1] != last.name or not isinstance(m[2], w.Chunk)), None)
        if i is None:
            break
        world.deliver(i)
    assert world.sender.state is SenderState.STREAMING
    assert world.sender.sent == 3 and world.progress == []


def test_progress_counts_only_bytes_every_target_holds() -> None:
    world = make_world(distinct_bytes(50), 4, fanout=2, chunk_size=10, window=8)
    world.settle()
    assert world.progress == sorted(world.progress) and world.progress[-1] == 50


# ---- failures name their culprit and abort everyone ------------------------------

def test_a_refusing_target_deep_in_a_tree_is_named_and_nothing_is_created() -> None:
    world = make_world(distinct_bytes(40), 7, fanout=2, chunk_size=10, refuse=("t5",))
    world.settle()
    assert world.finished is not None and not world.finished.ok
    assert (world.finished.culprit, world.finished.kind) == ("t5", w.REFUSED)
    check_all_or_nothing(world)
    assert all(t.committed is None for t in world.targets.values())


@pytest.mark.parametrize("victim", ["t1", "t3", "t6"])
def test_a_target_lost_mid_push_is_named_and_every_other_discards(victim: str) -> None:
    world = make_world(distinct_bytes(400), 7, fanout=2, chunk_size=10, window=4)
    for _ in range(60):
        world.deliver(0)
    world.kill(victim)
    world.settle()
    assert world.finished is not None
    assert (world.finished.culprit, world.finished.kind) == (victim, w.LOST)
    check_all_or_nothing(world)
    assert all(t.committed is None for t in world.targets.values())


def test_a_silent_deep_target_is_named_not_its_ancestors() -> None:
    """Its parent times it out; the ancestors' keepalives keep them above suspicion."""
    world = make_world(distinct_bytes(400), 15, fanout=1, chunk_size=10, window=4)
    deep = world.sender.plan.trees[0][-1]
    for _ in range(200):
        if not world.link:
            break
        world.deliver(0)
    world.targets[deep].alive = False            # hangs without its site going down
    for _ in range(100):
        while world.link:
            world.deliver(0)
        if world.finished is not None:
            break
        world.tick(1.0)
    assert world.finished is not None
    assert (world.finished.culprit, world.finished.kind) == (deep, w.TIMEOUT)
    world.targets[deep].alive = True             # wakes; missed the abort; expires
    world.settle()
    check_all_or_nothing(world)


def test_a_bad_digest_fails_the_push_at_commit_naming_the_target() -> None:
    world = make_world(distinct_bytes(30), 3, fanout=1, chunk_size=10)
    while world.link:
        frm, to, msg, payload = world.link[0]
        if isinstance(msg, w.End):                # the file changed under the sender
            world.link[0] = (frm, to, w.End(msg.stream, msg.size, "0" * 64), payload)
        world.deliver(0)
    world.settle()
    assert world.finished is not None and world.finished.kind == w.INTEGRITY
    assert world.finished.culprit == world.sender.plan.trees[0][0]
    check_all_or_nothing(world)


def test_a_failure_after_some_targets_committed_keeps_their_checked_files() -> None:
    world = make_world(distinct_bytes(30), 3, fanout=1, chunk_size=10, window=8)
    last = world.sender.plan.trees[0][-1]
    for _ in range(10_000):
        i = next((i for i, m in enumerate(world.link)
                  if not (m[1] == last and isinstance(m[2], w.End))), None)
        if i is None:
            break
        world.deliver(i)
    world.kill(last)
    world.settle()
    assert world.finished is not None and world.finished.culprit == last
    check_all_or_nothing(world)


# ---- any fault: never wrong bytes, never a partial file left, always an end ----------

@pytest.mark.timeout(120)       # about 20 s on two cores; hypothesis may shrink for longer
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.integers(0, 160), n=st.integers(1, 9), fanout=st.integers(1, 3),
       stripes=st.integers(1, 3), chunk=st.integers(1, 32), window=st.integers(1, 6),
       script=st.data())
def test_any_link_faults_never_leave_wrong_or_partial_files(
        size: int, n: int, fanout: int, stripes: int, chunk: int, window: int,
        script: st.DataObject) -> None:
    world = make_world(distinct_bytes(size), n, fanout, stripes, chunk, window)
    faults, budget = 0, script.draw(st.integers(1, 3), label="fault budget")
    for _ in range(600):
        if not world.link:
            break
        action = script.draw(st.sampled_from(
            ["deliver"] * 6 + ["reorder", "duplicate", "drop", "tick", "kill"]), label="action")
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
            world.tick(script.draw(st.floats(0.0, 12.0), label="dt"))
        else:
            world.kill(script.draw(st.sampled_from(sorted(world.targets)), label="victim"))
    world.settle()
    check_all_or_nothing(world)


# ---- hostile or malformed input from a neighbour -------------------------------------

def opened_relay(me: str = "b", members: tuple[str, ...] = ("b", "c"),
                 size: int = 20) -> r.Relay:
    relay = r.Relay(me, Limits())
    msg = w.Open("st", 0, members, "f", size, 10, 1, 1, 5.0, "ch", "tp")
    out = relay.open_received("a", msg, 0.0)
    assert out[0] == r.CreateFile("f")
    relay.file_created(0.0)
    relay.accept_received("c", 0, 0.0)
    return relay


@pytest.mark.parametrize("members", [("x", "c"), ("b", "b"), ("b", "a"), ()])
def test_an_open_whose_subtree_is_not_ours_fails_naming_the_parent(
        members: tuple[str, ...]) -> None:
    relay = r.Relay("b", Limits())
    out = relay.open_received("a", w.Open("st", 0, members, "f", 1, 1, 1, 1, 5.0, "c", "t"), 0)
    assert [type(c) for c in out] == [w.Send]
    failed = out[0].message
    assert isinstance(failed, w.Failed) and failed.culprit == "a" and failed.kind == w.PROTOCOL


@pytest.mark.parametrize("name", ["../x", "a/b", ""])
def test_an_unsafe_name_is_refused_before_anything_is_created(name: str) -> None:
    relay = r.Relay("b", Limits())
    out = relay.open_received("a", w.Open("st", 0, ("b",), name, 1, 1, 1, 1, 5.0, "c", "t"), 0)
    assert len(out) == 1 and isinstance(out[0].message, w.Failed)  # type: ignore[union-attr]
    assert out[0].message.kind == w.REFUSED and relay.finished  # type: ignore[union-attr]


def test_an_ack_beyond_what_was_forwarded_fails_naming_the_child() -> None:
    relay = opened_relay()
    relay.chunk_received("a", 0, 10, 0.0)
    out = relay.ack_received("c", 0, 2, 0.0)
    assert out[0] == r.Discard("c: ack of 2 chunks, 1 sent")
    failed = [c.message for c in out if isinstance(c, w.Send)
              and isinstance(c.message, w.Failed)]
    assert failed == [w.Failed("st", "c", w.PROTOCOL, "ack of 2 chunks, 1 sent")]


def test_a_chunk_out_of_order_or_from_a_stranger_fails_the_stream() -> None:
    relay = opened_relay()
    assert isinstance(relay.chunk_received("a", 1, 10, 0.0)[0], r.Discard)
    relay = opened_relay()
    out = relay.chunk_received("z", 0, 10, 0.0)
    assert isinstance(out[0], r.Discard) and "not its stripe's parent" in out[0].reason


def test_a_relay_passes_a_chunk_down_before_writing_it() -> None:
    relay = opened_relay()
    assert relay.chunk_received("a", 0, 10, 0.0) == [
        w.Send(("c",), w.Chunk("st", 0)), r.WriteChunk(0, 0, 10)]
    assert relay.chunk_written(0, 0.0) == []      # c has not acked: nothing to ack up
    assert relay.ack_received("c", 0, 1, 0.0) == [w.Send(("a",), w.Ack("st", 0, 1))]


def test_a_relay_waiting_on_its_child_repeats_its_ack_as_a_keepalive() -> None:
    relay = opened_relay()
    relay.chunk_received("a", 0, 10, 0.0)
    relay.chunk_written(0, 0.0)
    assert relay.time_passed(1.0) == []
    assert relay.time_passed(1.3) == [w.Send(("a",), w.Ack("st", 0, 0))]
    out = relay.time_passed(5.1)
    assert isinstance(out[0], r.Discard) and "c: no answer" in out[0].reason


def test_misuse_by_the_shell_raises_locally() -> None:
    relay = opened_relay()
    with pytest.raises(LocalProtocolError):
        relay.chunk_written(0, 0.0)              # nothing was received
    sender = SwarmSender(plan(["t"]), stream="s", name="f", channel="c", topic="t", size=5,
                         chunk_size=5, window_chunks=1, chunk_timeout=1.0)
    sender.start(0.0)
    with pytest.raises(LocalProtocolError):
        sender.chunk_read(0, 5, 0.0)             # no ReadChunk was asked for
    with pytest.raises(LocalProtocolError):
        plan(["a", "a"])


def test_an_end_that_came_by_another_stripe_goes_down_a_stripe_opened_later() -> None:
    relay = r.Relay("b", Limits())
    open0 = w.Open("st", 0, ("b", "c"), "f", 10, 10, 2, 1, 5.0, "ch", "tp")
    relay.open_received("a", open0, 0.0)
    relay.file_created(0.0)
    relay.chunk_received("a", 0, 10, 0.0)
    relay.chunk_written(0, 0.0)
    assert relay.end_received("a", 10, "dig", 0.0) == [w.Send(("c",), w.End("st", 10, "dig"))]
    open1 = w.Open("st", 1, ("b", "d"), "f", 10, 10, 2, 1, 5.0, "ch", "tp")
    out = relay.open_received("x", open1, 0.1)
    assert w.Send(("d",), w.End("st", 10, "dig")) in out
    assert out[-1] == r.CommitFile(10, "dig")        # stripe 1 has no chunks: complete


def test_a_relay_accepts_for_itself_without_waiting_for_its_children() -> None:
    relay = r.Relay("b", Limits())
    relay.open_received("a", w.Open("st", 0, ("b", "c"), "f", 10, 10, 1, 1, 5.0, "c", "t"), 0)
    assert relay.file_created(0.0) == [w.Send(("a",), w.Accept("st", 0))]
