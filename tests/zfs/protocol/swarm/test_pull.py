"""Pull with peers: the owner's tracker, downloads and seeders joined by an in-memory link."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zfs.protocol.errors import LocalProtocolError
from zfs.protocol.swarm import download as d
from zfs.protocol.swarm import downloading as ds
from zfs.protocol.swarm import tracker as t
from zfs.protocol.swarm import wire as w
from zfs.protocol.swarm.seeder import ReadPiece, Seeder

from tests.zfs.protocol.swarm.pullworld import OWNER, RID, make_world


def check_every_survivor_has_the_file(world) -> None:  # type: ignore[no-untyped-def]
    for r in world.recipients.values():
        if r.alive:
            assert r.finish is not None and r.finish.state is ds.DownloadState.DONE, \
                (r.address, r.finish)
            assert r.file == world.data, r.address
            got = r.finish.from_owner + sum(n for _, n in r.finish.from_peers)
            assert got == len(world.data)


# ---- clean and lossy links ---------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 400), n=st.integers(1, 6), chunk=st.integers(1, 40),
       window=st.integers(1, 5), page=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_a_clean_link_gives_every_recipient_the_exact_file(
        size: int, n: int, chunk: int, window: int, page: int, seed: int) -> None:
    world = make_world(random.Random(seed).randbytes(size), n, chunk_size=chunk,
                       window=window, page_chunks=page, seed=seed)
    world.settle()
    check_every_survivor_has_the_file(world)
    assert world.now == 0.0, "a clean pull needed a timeout"


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 200), n=st.integers(2, 5), chunk=st.integers(4, 40),
       drop=st.floats(0, 0.3), dup=st.floats(0, 0.3), seed=st.integers(0, 2**16))
def test_a_lossy_reordering_link_still_gives_the_exact_file(
        size: int, n: int, chunk: int, drop: float, dup: float, seed: int) -> None:
    world = make_world(random.Random(seed).randbytes(size), n, chunk_size=chunk,
                       seed=seed, drop=drop, dup=dup)
    world.settle()
    check_every_survivor_has_the_file(world)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 300), n=st.integers(3, 6), seed=st.integers(0, 2**16),
       script=st.data())
def test_bad_lost_and_unreachable_peers_never_stop_the_others(
        size: int, n: int, seed: int, script: st.DataObject) -> None:
    rng = random.Random(seed)
    bad = tuple(i for i in range(n) if rng.random() < 0.3)
    nat = tuple(i for i in range(n) if rng.random() < 0.3)
    cut = tuple((a, b) for a in range(n) for b in range(a) if rng.random() < 0.3)
    world = make_world(rng.randbytes(size), n, chunk_size=16, seed=seed, bad=bad, nat=nat,
                       unreachable=cut)
    for _ in range(script.draw(st.integers(0, 2), label="kills")):
        for _ in range(script.draw(st.integers(0, 40), label="steps")):
            if world.link:
                world.deliver(0)
        world.kill(script.draw(st.sampled_from(sorted(world.recipients)), label="victim"))
    world.settle()
    check_every_survivor_has_the_file(world)


# ---- how the bytes travel ----------------------------------------------------------

def test_peers_carry_most_of_the_bytes() -> None:
    """The link here has no rates, so this checks the routing; swarmsim measures speed."""
    data = random.Random(1).randbytes(64 * 32)
    world = make_world(data, 12, chunk_size=32, window=4, owner_slots=2)
    world.settle()
    check_every_survivor_has_the_file(world)
    assert world.tracker.owner_bytes <= 3 * len(data)
    from_peers = sum(n for r in world.recipients.values() for _, n in r.finish.from_peers)
    assert from_peers >= 9 * len(data)
    assert sum(world.tracker.served.values()) == from_peers


def test_a_peer_that_serves_a_bad_piece_is_never_pointed_at_again() -> None:
    data = random.Random(2).randbytes(40 * 16)
    world = make_world(data, 6, chunk_size=16, bad=(0,))
    world.settle()
    check_every_survivor_has_the_file(world)
    fed = [p for r in world.recipients.values() for p, n in r.finish.from_peers]
    assert "r0/dl" not in fed and "r0/dl" not in world.tracker.served
    pointed = [m for m in world.sent if isinstance(m, w.Fetch) and m.peer == "r0/dl"]
    assert len(pointed) <= 2                 # what was under way when the first report came


def test_recipients_behind_nat_take_from_others_and_serve_nobody() -> None:
    data = random.Random(3).randbytes(30 * 16)
    world = make_world(data, 5, chunk_size=16, nat=(0, 1, 2, 3))
    world.settle()
    check_every_survivor_has_the_file(world)
    fed = {p for r in world.recipients.values() for p, _ in r.finish.from_peers}
    assert fed <= {"r4/dl"}


def test_recipients_that_cannot_reach_any_peer_fall_back_to_the_owner() -> None:
    data = random.Random(4).randbytes(30 * 16)
    cut = tuple((a, b) for a in range(4) for b in range(a))
    world = make_world(data, 4, chunk_size=16, unreachable=cut)
    world.settle()
    check_every_survivor_has_the_file(world)
    assert all(r.finish.from_peers == () for r in world.recipients.values())


def test_a_serving_peer_killed_mid_way_is_routed_around_at_once() -> None:
    data = random.Random(5).randbytes(60 * 16)
    world = make_world(data, 5, chunk_size=16)
    for _ in range(120):
        world.deliver(0)
    world.kill("r1/dl")
    world.settle()
    check_every_survivor_has_the_file(world)
    assert world.now == 0.0, "a lost peer cost a timeout instead of a retry at once"


# ---- the tracker's rules -----------------------------------------------------------

def tracker(size: int = 64, chunk: int = 8, **kw: int) -> t.Tracker:
    return t.Tracker(RID, name="f", size=size, key="k", chunk_size=chunk, page_chunks=4,
                     **kw)


def test_the_owner_injects_distinct_chunks_one_per_recipient() -> None:
    tr = tracker(owner_slots=3)
    for i in range(4):
        (welcome,) = tr.joined(f"r{i}/dl", 4, f"tcp://r{i}", 0.0)
        assert welcome == w.Send((f"r{i}/dl",), w.Welcome(RID, "f", 64, "k", 8, 4))
    out = [c for i in range(4) for c in tr.wanted(f"r{i}/dl", (), (), 0.0)]
    pieces = [c for c in out if isinstance(c, t.SendPiece)]
    assert [(p.to, p.index) for p in pieces] == [("r0/dl", 0), ("r1/dl", 1), ("r2/dl", 2)]
    assert out[-1] == w.Send(("r3/dl",), w.Wait(RID))     # the owner's slots are full


def test_a_new_holder_is_pointed_at_for_what_it_holds() -> None:
    tr = tracker(owner_slots=1)
    tr.joined("a/dl", 4, "tcp://a", 0.0)
    tr.joined("b/dl", 4, "tcp://b", 0.0)
    tr.wanted("a/dl", (), (), 0.0)
    tr.wanted("b/dl", (), (), 0.0)
    out = tr.wanted("a/dl", (0,), (), 0.1)
    assert w.Send(("b/dl",), w.Fetch(RID, 0, "a/dl", "tcp://a")) in out


def test_an_unreported_assignment_is_handed_out_again_after_its_lease() -> None:
    tr = t.Tracker(RID, name="f", size=64, key="k", chunk_size=8, owner_slots=1, lease=5.0)
    tr.joined("a/dl", 1, None, 0.0)
    assert tr.wanted("a/dl", (), (), 0.0) == [t.SendPiece("a/dl", 0, 0, 8)]
    assert tr.wanted("a/dl", (), (), 3.0) == []         # a nudge: it is still there
    assert tr.time_passed(4.0) == []
    assert tr.time_passed(5.0) == [t.SendPiece("a/dl", 0, 0, 8)]


def test_a_recipient_silent_for_a_whole_lease_is_forgotten_and_asked_to_rejoin() -> None:
    tr = t.Tracker(RID, name="f", size=64, key="k", chunk_size=8, owner_slots=1, lease=5.0)
    tr.joined("a/dl", 1, None, 0.0)
    tr.joined("b/dl", 1, None, 0.0)
    tr.wanted("a/dl", (), (), 0.0)
    assert tr.wanted("b/dl", (), (), 0.0) == [w.Send(("b/dl",), w.Wait(RID))]
    tr.wanted("b/dl", (), (), 4.0)
    assert tr.time_passed(5.0) == [t.SendPiece("b/dl", 0, 0, 8)]   # a's slot goes to b
    assert tr.wanted("a/dl", (0,), (), 6.0) == [w.Send(("a/dl",), w.Rejoin(RID))]


def test_a_closed_share_tells_its_recipients_and_hands_out_nothing_more() -> None:
    tr = tracker(owner_slots=1, lease=1.0)  # type: ignore[arg-type]
    tr.joined("a/dl", 2, "tcp://a", 0.0)
    tr.joined("b/dl", 2, None, 0.0)
    tr.wanted("a/dl", (), (), 0.0)
    assert tr.close() == [w.Send(("a/dl", "b/dl"), w.Ended(RID))]
    assert tr.time_passed(5.0) == []
    assert tr.wanted("a/dl", (0,), (), 5.0) == [w.Send(("a/dl",), w.Ended(RID))]


def test_reports_from_a_stranger_ask_it_to_join_again() -> None:
    tr = tracker()
    assert tr.wanted("x/dl", (1,), (), 0.0) == [w.Send(("x/dl",), w.Rejoin(RID))]
    assert tr.close() == []
    assert tr.joined("x/dl", 4, None, 0.0) == [w.Send(("x/dl",), w.Ended(RID))]


def test_malformed_reports_are_skipped() -> None:
    tr = tracker()
    tr.joined("a/dl", 2, None, 0.0)
    tr.wanted("a/dl", ("x", -1, 10**9), ((0, 1), "junk", (0, "p", "bad")), 0.0)
    assert tr.digests_requested("a/dl", 99) == [] and tr.digests_requested("a/dl", "0") == []


# ---- the download's and the seeder's rules ------------------------------------------

def test_a_download_checks_a_peer_piece_and_reports_a_bad_one() -> None:
    dl = d.SwarmDownload(RID, OWNER, window_chunks=2)
    dl.started(0.0)
    assert dl.welcomed(w.Welcome(RID, "f", 16, "k", 8, 4), 0.0) == [ds.OpenPartial("f", "k")]
    dl.partial_opened((), 0.0)
    fetch = w.Fetch(RID, 1, "p/dl", "tcp://p")
    assert dl.fetch_received(fetch, 0.0) == [w.Send((OWNER,), w.GetDigests(RID, 0))]
    assert dl.digests_received(w.Digests(RID, 0, ("d0", "d1")), 0.0) == [
        ds.Dial("p/dl", "tcp://p"), w.Send(("p/dl",), w.Get(RID, 1))]
    assert dl.piece_received("z/dl", 1, 8, 0.0) == []          # not asked of it
    assert dl.piece_received("p/dl", 1, 8, 0.0) == [ds.CheckPiece(1, "d1")]
    assert dl.piece_checked(1, False, 0.0) == [
        w.Send((OWNER,), w.Want(RID, (), ((1, "p/dl", w.BAD),)))]


def test_a_silent_peer_is_reported_slow_and_a_silent_owner_nudged_then_given_up() -> None:
    dl = d.SwarmDownload(RID, OWNER, window_chunks=2, request_timeout=1.0, retries=1)
    dl.started(0.0)
    dl.welcomed(w.Welcome(RID, "f", 16, "k", 8, 4), 0.0)
    dl.partial_opened((), 0.0)
    dl.fetch_received(w.Fetch(RID, 0, "p/dl", "tcp://p"), 0.0)
    dl.digests_received(w.Digests(RID, 0, ("d0", "d1")), 0.0)
    out = dl.time_passed(1.0)
    assert out == [w.Send((OWNER,), w.Want(RID, (), ((0, "p/dl", w.SLOW),))),
                   w.Send((OWNER,), w.Want(RID, (), ()))]
    assert dl.time_passed(1.5) == []
    (leave, finish) = dl.time_passed(2.0)
    assert isinstance(finish, ds.Finish) and finish.state is ds.DownloadState.FAILED


@pytest.mark.parametrize("name", ["../x", "a/b", ""])
def test_an_unsafe_name_from_the_owner_fails_the_download(name: str) -> None:
    dl = d.SwarmDownload(RID, OWNER)
    dl.started(0.0)
    out = dl.welcomed(w.Welcome(RID, name, 16, "k", 8, 4), 0.0)
    assert isinstance(out[-1], ds.Finish) and out[-1].state is ds.DownloadState.FAILED


def test_a_seeder_serves_only_what_it_holds_and_declines_once_ended() -> None:
    seeder = Seeder(RID, size=20, chunk_size=8, max_uploads=1)
    assert seeder.get_received("a", 0, 0.0) == [
        w.Send(("a",), w.Decline(RID, 0, "not held"))]
    seeder.chunk_held(2)
    assert seeder.get_received("a", 2, 0.0) == [ReadPiece("a", 2, 16, 4)]
    assert seeder.get_received("b", 2, 0.0) == [w.Send(("b",), w.Decline(RID, 2, "busy"))]
    seeder.piece_read("a", 2, 4, 0.0)
    seeder.share_ended()
    assert seeder.get_received("a", 2, 0.0) == [w.Send(("a",), w.Decline(RID, 2, "ended"))]
    with pytest.raises(LocalProtocolError):
        seeder.piece_read("a", 2, 4, 0.0)


def test_the_owner_does_not_serve_again_what_a_peer_now_holds() -> None:
    tr = tracker(owner_slots=1)
    tr.joined("a/dl", 2, "tcp://a", 0.0)
    tr.joined("b/dl", 2, "tcp://b", 0.0)
    assert tr.wanted("a/dl", (), (), 0.0) == [t.SendPiece("a/dl", 0, 0, 8)]
    tr.wanted("b/dl", (), (), 0.0)
    out = tr.wanted("a/dl", (0,), (), 0.1)
    assert w.Send(("b/dl",), w.Fetch(RID, 0, "a/dl", "tcp://a")) in out
    assert all(c.index != 0 for c in out if isinstance(c, t.SendPiece))


def test_a_freed_slot_goes_to_who_waited_not_to_who_reported() -> None:
    tr = tracker(size=80, owner_slots=1, peer_slots=1)
    for name in ("s", "busy", "other", "idle"):
        tr.joined(f"{name}/dl", 4, f"tcp://{name}", 0.0)
    tr.wanted("s/dl", list(range(10)), (), 0.0)            # s holds the whole file
    tr.left("s/dl", True, 0.0)
    fetch, piece = tr.wanted("busy/dl", (), (), 0.0)        # s's one slot, the owner's one
    assert fetch.message.peer == "s/dl" and isinstance(piece, t.SendPiece)  # type: ignore[union-attr]
    assert tr.wanted("other/dl", (), (), 0.0) == [w.Send(("other/dl",), w.Wait(RID))]
    assert tr.wanted("idle/dl", (), (), 0.0) == [w.Send(("idle/dl",), w.Wait(RID))]
    out = tr.wanted("busy/dl", (fetch.message.index,), (), 0.1)  # type: ignore[union-attr]
    # s's slot goes to one with nothing under way, not to busy; busy, a holder now,
    # serves the other one
    assert sorted((c.to, c.message.peer) for c in out) == [  # type: ignore[union-attr]
        (("idle/dl",), "s/dl"), (("other/dl",), "busy/dl")] or \
        sorted((c.to, c.message.peer) for c in out) == [  # type: ignore[union-attr]
        (("idle/dl",), "busy/dl"), (("other/dl",), "s/dl")]


def test_a_peer_that_quorum_recipients_cannot_reach_is_offered_to_nobody() -> None:
    tr = tracker(owner_slots=1)
    tr.joined("p/dl", 4, "tcp://p", 0.0)
    tr.wanted("p/dl", list(range(8)), (), 0.0)
    tr.left("p/dl", True, 0.0)
    for i in range(3):
        tr.joined(f"r{i}/dl", 1, None, 0.0)
        (fetch,) = [c for c in tr.wanted(f"r{i}/dl", (), (), 0.0)
                    if isinstance(c, w.Send) and isinstance(c.message, w.Fetch)]
        index = fetch.message.index  # type: ignore[union-attr]
        tr.wanted(f"r{i}/dl", (), ((index, "p/dl", w.UNREACHABLE),), 0.1)
    tr.joined("late/dl", 4, None, 0.2)
    out = tr.wanted("late/dl", (), (), 0.2)
    assert not any(isinstance(c, w.Send) and isinstance(c.message, w.Fetch) for c in out)


def test_a_download_remembers_an_unreachable_peer_and_reports_it_at_once() -> None:
    dl = d.SwarmDownload(RID, OWNER, window_chunks=4)
    dl.started(0.0)
    dl.welcomed(w.Welcome(RID, "f", 32, "k", 8, 4), 0.0)
    dl.partial_opened((), 0.0)
    dl.fetch_received(w.Fetch(RID, 0, "p/dl", "tcp://p"), 0.0)
    dl.digests_received(w.Digests(RID, 0, ("d0", "d1", "d2", "d3")), 0.0)
    assert dl.peer_unreachable("p/dl", 0.1) == [
        w.Send((OWNER,), w.Want(RID, (), ((0, "p/dl", w.UNREACHABLE),)))]
    assert dl.fetch_received(w.Fetch(RID, 1, "p/dl", "tcp://p"), 0.2) == [
        w.Send((OWNER,), w.Want(RID, (), ((1, "p/dl", w.UNREACHABLE),)))]


def test_a_recipient_alone_gets_its_whole_window_from_the_owner() -> None:
    tr = tracker(owner_slots=4)
    tr.joined("a/dl", 3, "tcp://a", 0.0)
    tr.joined("deaf/dl", 3, None, 0.0)           # it listens nowhere: it serves nobody
    pieces = [c for c in tr.wanted("a/dl", (), (), 0.0) if isinstance(c, t.SendPiece)]
    assert [p.index for p in pieces] == [0, 1, 2]   # no other recipient could pass them on


def test_a_complete_download_that_will_not_seed_is_never_pointed_at() -> None:
    tr = tracker(owner_slots=1)
    for name in ("a", "b", "c"):
        tr.joined(f"{name}/dl", 4, f"tcp://{name}", 0.0)
    tr.wanted("a/dl", (), (), 0.0)
    tr.wanted("a/dl", tuple(range(8)), (), 0.1)
    assert tr.left("a/dl", True, 0.2, seeds=False) == []
    out = tr.wanted("b/dl", (), (), 0.3) + tr.wanted("c/dl", (), (), 0.3)
    assert not [c for c in out if isinstance(c, w.Send) and isinstance(c.message, w.Fetch)
                and c.message.peer == "a/dl"]
