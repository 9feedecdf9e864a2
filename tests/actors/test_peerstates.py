"""Peer states as the I/O thread writes them and sending and waiting threads read them."""

from __future__ import annotations

import threading

import pytest

import actors
from actors.peerstates import PeerStates


def test_a_peer_named_at_start_is_connecting_and_may_be_sent_to() -> None:
    states = PeerStates("here", ["there"])
    assert not states.is_up("there")
    states.check("there")  # messages wait for the link: no error
    assert states.up() == []


def test_check_raises_what_the_state_says() -> None:
    states = PeerStates("here", ["lost", "refused"])
    states.set_down("lost", "connection lost", refused=False)
    states.set_down("refused", "protocol version 1", refused=True)
    with pytest.raises(actors.UnknownSite, match="here knows no site named 'nowhere'"):
        states.check("nowhere")
    with pytest.raises(actors.PeerLost, match="lost is lost: connection lost"):
        states.check("lost")
    with pytest.raises(actors.PeerRefused, match="refused refused: protocol version 1"):
        states.check("refused")


def test_wait_up_returns_once_another_thread_sets_the_peer_up() -> None:
    states = PeerStates("here", ["there"])
    waiting = threading.Event()
    result: list[bool] = []

    def wait() -> None:
        waiting.set()
        result.append(states.wait_up("there", timeout=10))

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert waiting.wait(5)
    states.set_up("there")
    waiter.join(10)
    assert result == [True]
    assert states.is_up("there") and states.up() == ["there"]


def test_wait_up_raises_on_refusal_and_times_out_otherwise() -> None:
    states = PeerStates("here", ["there", "silent"])
    states.set_down("there", "name taken", refused=True)
    with pytest.raises(actors.PeerRefused, match="there refused: name taken"):
        states.wait_up("there", timeout=10)
    assert states.wait_up("silent", timeout=0.05) is False


def test_connecting_keeps_a_known_state() -> None:
    states = PeerStates("here", [])
    states.connecting("there")
    states.set_up("there")
    states.connecting("there")  # connecting again to an up peer does not reset it
    assert states.is_up("there")


def test_a_congested_peer_is_up_and_its_senders_wait_until_it_drains() -> None:
    states = PeerStates("here", ["there"])
    states.set_up("there")
    states.set_congested("there", True)
    assert not states.is_up("there")  # off the one-lookup path: senders check
    assert states.up() == ["there"] and states.wait_up("there", timeout=1)
    assert states.check("there", wait=0.01) is True  # still congested: wait more
    drained = threading.Timer(0.05, states.set_congested, ("there", False))
    drained.start()
    assert states.check("there", wait=10) is False
    drained.join()
    assert states.is_up("there")


def test_congestion_of_a_peer_that_is_not_up_is_ignored_and_forgetting_unknows_it() -> None:
    states = PeerStates("here", ["there"])
    states.set_down("there", "connection lost", refused=False)
    states.set_congested("there", True)
    with pytest.raises(actors.PeerLost):
        states.check("there")
    states.forget("there")
    with pytest.raises(actors.UnknownSite):
        states.check("there")
