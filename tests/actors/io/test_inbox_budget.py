"""The bound on payload bytes handed to the I/O thread and not yet read by it."""

from __future__ import annotations

import threading

import pytest

from actors.errors import SiteClosed
from actors.io.outbox import InboxBudget

MiB = 1 << 20


def _take_in_thread(budget: InboxBudget, size: int) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def take() -> None:
        try:
            budget.take(size)
            outcome.append("took")
        except SiteClosed as err:
            outcome.append(err)

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.timeout(10)
def test_a_sender_over_the_budget_waits_until_the_io_thread_reads() -> None:
    budget = InboxBudget(4 * MiB)
    budget.take(3 * MiB)
    thread, outcome = _take_in_thread(budget, 2 * MiB)
    thread.join(0.2)
    assert thread.is_alive() and not outcome     # 5 MiB would be over 4: it waits
    budget.give(3 * MiB)
    thread.join(5)
    assert outcome == ["took"]


@pytest.mark.timeout(10)
def test_a_message_bigger_than_the_budget_goes_alone() -> None:
    budget = InboxBudget(MiB)
    budget.take(8 * MiB)                 # nothing in the pipe: it goes
    thread, outcome = _take_in_thread(budget, 1)
    thread.join(0.2)
    assert thread.is_alive()             # anything more waits behind it
    budget.give(8 * MiB)
    thread.join(5)
    assert outcome == ["took"]


@pytest.mark.timeout(10)
def test_a_waiting_sender_is_released_when_the_site_stops() -> None:
    budget = InboxBudget(MiB)
    budget.take(MiB)
    thread, outcome = _take_in_thread(budget, MiB)
    thread.join(0.2)
    assert thread.is_alive()
    budget.close()
    thread.join(5)
    assert len(outcome) == 1 and isinstance(outcome[0], SiteClosed)


@pytest.mark.timeout(10)
def test_giving_back_more_than_was_taken_never_makes_room_negative() -> None:
    budget = InboxBudget(2 * MiB)
    budget.take(MiB)
    budget.give(5 * MiB)                 # a sender's len() undercounted its bytes
    budget.take(2 * MiB)                 # the count is zero, not -4 MiB: this fills it
    thread, outcome = _take_in_thread(budget, 1)
    thread.join(0.2)
    assert thread.is_alive() and not outcome
    budget.close()
    thread.join(5)
