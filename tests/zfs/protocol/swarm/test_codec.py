"""The swarm push's wire form: round trips, the exact body of each kind, bad bodies refused."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zfs.protocol.errors import RemoteProtocolError
from zfs.protocol.swarm import codec
from zfs.protocol.swarm.wire import Abort, Accept, Ack, Chunk, Done, End, Failed, Open

OPEN = Open("s1", 0, ("a", "b"), "f.bin", 10, 4, 1, 1, 30.0, "ch", "tp")
OPENING = codec.Opening(OPEN, ("tcp://10.0.0.1:5000", ""), "owner", {"k": 1})

EXACT: list[tuple[Any, list[Any]]] = [
    (OPENING, ["swarm-open", "s1", 0, ["a", "b"], "f.bin", 10, 4, 1, 1, 30.0, "ch", "tp",
               ["tcp://10.0.0.1:5000", ""], "owner", {"k": 1}]),
    (codec.Probe(), ["swarm-probe"]),
    (Accept("s1", 1), ["swarm-accept", "s1", 1]),
    (Chunk("s1", 7), ["swarm-chunk", "s1", 7]),
    (Ack("s1", 1, 3), ["swarm-ack", "s1", 1, 3]),
    (End("s1", 10, "d"), ["swarm-end", "s1", 10, "d"]),
    (Done("s1", 0), ["swarm-done", "s1", 0]),
    (Failed("s1", "b", "lost", "gone"), ["swarm-failed", "s1", "b", "lost", "gone"]),
    (Abort("s1", "why"), ["swarm-abort", "s1", "why"]),
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("message,body", EXACT, ids=[body[0] for _, body in EXACT])
def test_each_kind_has_one_exact_body_and_reads_back_as_itself(message: Any,
                                                              body: list[Any]) -> None:
    assert codec.encode(message) == body
    assert codec.decode(body) == message


BAD: list[Any] = [
    None, [], "swarm-ack", [1, 2], ["swarm-nothing", "s"], ["swarm-ack", "s", 1],
    ["swarm-ack", "s", -1, 2], ["swarm-chunk", "s", True], ["swarm-chunk", "s", 1.5],
    ["swarm-failed", "s", "b", "lost", 3], ["swarm-probe", 1],
    ["swarm-open", "s1", 0, [], "f", 1, 1, 1, 1, 1.0, "c", "t", [], "o", None],
    ["swarm-open", "s1", 0, ["a"], "f", 1, 1, 1, 1, 0.0, "c", "t", [""], "o", None],
    ["swarm-open", "s1", 0, ["a"], "f", 1, 1, 1, 1, float("nan"), "c", "t", [""], "o", None],
    ["swarm-open", "s1", 0, ["a"], "f", 1, 1, 1, 1, 1.0, "c", "t", ["", ""], "o", None],
    ["swarm-open", "s1", 0, ["a"], "f", 1, 1, 1, 1, 1.0, "c", "t", ["x" * 2000], "o", None],
    ["swarm-open", "s1", 0, ["a", 5], "f", 1, 1, 1, 1, 1.0, "c", "t", ["", ""], "o", None],
    ["swarm-open", "s1", 0, ["a"], "f", 1, 1, 1, 1, 1.0, "c", "t", [""], "o"],
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("body", BAD, ids=range(len(BAD)))
def test_a_malformed_body_is_refused_as_the_peers_fault(body: Any) -> None:
    with pytest.raises(RemoteProtocolError):
        codec.decode(body)


@pytest.mark.timeout(60)
@given(st.lists(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(),
                          st.lists(st.text(), max_size=3)), max_size=16),
       st.sampled_from([body[0] for _, body in EXACT]))
def test_any_body_either_decodes_or_is_refused_never_crashes(rest: list[Any], kind: str) -> None:
    try:
        message = codec.decode([kind, *rest])
    except RemoteProtocolError:
        return
    assert repr(codec.decode(codec.encode(message))) == repr(message)
