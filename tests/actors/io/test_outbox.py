"""The queue between app/actor threads and the I/O thread: order, copies, bounds (its
message limit and its byte budget), wake-ups."""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Iterator

import pytest

from actors.errors import SiteClosed
from actors.io.frames import COPY_BELOW
from actors.io.outbox import SMALL, InboxBudget, Outbox, weight
from actors.options import SiteOptions

MiB = 1 << 20


@pytest.fixture()
def outbox() -> Iterator[Outbox]:
    box = Outbox(limit=4, budget=InboxBudget(64 << 20))
    yield box
    box.close()
    box.close_reader()


def _woken(box: Outbox, timeout: float = 0.0) -> bool:
    readable, _, _ = select.select([box.fileno], [], [], timeout)
    return bool(readable)


def _take_all(box: Outbox) -> list[object]:
    taken = []
    while box.items:
        item = box.items.popleft()
        if item is not None:
            box.taken(weight(item[1], item[2]))
        taken.append(item)
    return taken


def _in_thread(call) -> tuple[threading.Thread, list[object]]:  # type: ignore[no-untyped-def]
    outcome: list[object] = []

    def run() -> None:
        try:
            call()
            outcome.append("sent")
        except SiteClosed as err:
            outcome.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.timeout(10)
def test_messages_and_calls_keep_their_order_with_their_payload_parts(outbox: Outbox) -> None:
    big = os.urandom(300_000)
    outbox.send("beta", b"h0\x00with a NUL", ())
    outbox.send("gamma-1", b"h1", (b"small", big, b""))
    outbox.wake()
    taken = _take_all(outbox)
    assert taken[0] == ("beta", b"h0\x00with a NUL", ())
    peer, header, payload = taken[1]  # type: ignore[misc]
    assert (peer, header, [bytes(part) for part in payload]) == ("gamma-1", b"h1",
                                                                  [b"small", big, b""])
    assert payload[1] is big  # a large part travels as it was given, not copied
    assert taken[2] is None  # run the posted calls, after what came before


@pytest.mark.timeout(10)
def test_a_small_part_a_caller_could_change_is_copied_as_it_is_handed_over(
        outbox: Outbox) -> None:
    small = bytearray(b"before")
    large = bytearray(COPY_BELOW)
    outbox.send("beta", b"h", (small, large))
    small[:] = b"after!"
    large[0] = 7
    (_peer, _header, payload), = _take_all(outbox)  # type: ignore[misc]
    assert bytes(payload[0]) == b"before"   # copied: the caller may reuse a small buffer
    assert payload[1] is large and payload[1][0] == 7  # zero-copy: must stay unchanged


@pytest.mark.timeout(10)
def test_a_sender_wakes_the_io_thread_only_while_it_sleeps(outbox: Outbox) -> None:
    outbox.send("beta", b"h", ())
    assert not _woken(outbox)  # awake: it finds the message on its next round
    assert outbox.sleep_timeout(20) == 0  # a message waits: no sleep
    _take_all(outbox)
    assert outbox.sleep_timeout(20) == 20 and outbox.asleep
    outbox.send("beta", b"h", ())
    outbox.send("beta", b"h", ())
    assert _woken(outbox, 5)
    outbox.woken()
    assert not _woken(outbox)  # one wake-up for the two: the first cleared ``asleep``


@pytest.mark.timeout(10)
def test_many_threads_send_and_every_message_arrives(outbox: Outbox) -> None:
    box = Outbox(limit=10_000, budget=InboxBudget(64 << 20))
    try:
        def send_many(n: int) -> None:
            for i in range(500):
                box.send(f"peer{n}", i.to_bytes(2, "big"), (bytes([n]),))

        threads = [threading.Thread(target=send_many, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        taken = _take_all(box)
        for n in range(4):  # each thread's messages arrive, in the order it sent them
            mine = [item[1] for item in taken if item is not None and item[0] == f"peer{n}"]
            assert mine == [i.to_bytes(2, "big") for i in range(500)]
    finally:
        box.close()
        box.close_reader()


@pytest.mark.timeout(10)
def test_a_sender_past_the_message_limit_waits_until_the_io_thread_takes(
        outbox: Outbox) -> None:
    for _ in range(4):
        outbox.send("beta", b"h", ())
    thread, outcome = _in_thread(lambda: outbox.send("beta", b"fifth", ()))
    thread.join(0.2)
    assert thread.is_alive() and not outcome  # 4 small messages queued: the limit
    _take_all(outbox)
    thread.join(5)
    assert outcome == ["sent"] and outbox.items[-1] == ("beta", b"fifth", ())


@pytest.mark.timeout(10)
def test_a_limit_of_zero_bounds_nothing_as_a_zero_high_water_mark_does() -> None:
    box = Outbox(limit=0, budget=InboxBudget(64 << 20))
    try:
        for n in range(5000):
            box.send("beta", n.to_bytes(2, "big"), ())
        assert len(box.items) == 5000
    finally:
        box.close()
        box.close_reader()


@pytest.mark.timeout(10)
def test_large_messages_count_their_bytes_against_the_budget_not_the_limit() -> None:
    box = Outbox(limit=1, budget=InboxBudget(3 * SMALL))
    try:
        for _ in range(2):  # two large messages pass a limit of one: bytes bound them
            box.send("beta", b"h", (bytes(SMALL),))
        thread, outcome = _in_thread(lambda: box.send("beta", b"h", (bytes(SMALL),)))
        thread.join(0.2)
        assert thread.is_alive() and not outcome  # 3 x (SMALL + 1) is over the budget
        _take_all(box)
        thread.join(5)
        assert outcome == ["sent"]
    finally:
        box.close()
        box.close_reader()


@pytest.mark.timeout(10)
def test_closing_releases_waiting_senders_and_refuses_new_ones(outbox: Outbox) -> None:
    for _ in range(4):
        outbox.send("beta", b"h", ())
    thread, outcome = _in_thread(lambda: outbox.send("beta", b"h", ()))
    thread.join(0.2)
    assert thread.is_alive()
    outbox.close()
    thread.join(5)
    assert len(outcome) == 1 and isinstance(outcome[0], SiteClosed)
    with pytest.raises(SiteClosed):
        outbox.send("late", b"x", ())
    with pytest.raises(SiteClosed):
        outbox.wake()


# -- the byte budget alone ---------------------------------------------------------

@pytest.mark.timeout(10)
def test_a_sender_over_the_budget_waits_until_the_io_thread_reads() -> None:
    budget = InboxBudget(4 * MiB)
    budget.take(3 * MiB)
    thread, outcome = _in_thread(lambda: budget.take(2 * MiB))
    thread.join(0.2)
    assert thread.is_alive() and not outcome     # 5 MiB would be over 4: it waits
    budget.give(3 * MiB)
    thread.join(5)
    assert outcome == ["sent"]


@pytest.mark.timeout(10)
def test_a_message_bigger_than_the_budget_goes_alone() -> None:
    budget = InboxBudget(MiB)
    budget.take(8 * MiB)                 # nothing queued: it goes
    thread, outcome = _in_thread(lambda: budget.take(1))
    thread.join(0.2)
    assert thread.is_alive()             # anything more waits behind it
    budget.give(8 * MiB)
    thread.join(5)
    assert outcome == ["sent"]


@pytest.mark.timeout(10)
def test_a_waiting_sender_is_released_when_the_site_stops() -> None:
    budget = InboxBudget(MiB)
    budget.take(MiB)
    thread, outcome = _in_thread(lambda: budget.take(MiB))
    thread.join(0.2)
    assert thread.is_alive()
    budget.close()
    thread.join(5)
    assert len(outcome) == 1 and isinstance(outcome[0], SiteClosed)


@pytest.mark.timeout(10)
def test_giving_back_more_than_was_taken_never_makes_room_negative() -> None:
    budget = InboxBudget(2 * MiB)
    budget.take(MiB)
    budget.give(5 * MiB)                 # more than was taken
    budget.take(2 * MiB)                 # the count is zero, not -4 MiB: this fills it
    thread, outcome = _in_thread(lambda: budget.take(1))
    thread.join(0.2)
    assert thread.is_alive() and not outcome
    budget.close()
    thread.join(5)


def test_payload_frame_limit_is_checked() -> None:
    assert SiteOptions(max_payload_frames=255).max_payload_frames == 255
    with pytest.raises(ValueError, match="max_payload_frames"):
        SiteOptions(max_payload_frames=256)
