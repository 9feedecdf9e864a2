"""Pull with peers on the wire: the exact body of each kind, round trips, bad bodies refused."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zfs.protocol.errors import RemoteProtocolError
from zfs.protocol.swarm import pullcodec
from zfs.protocol.swarm.wire import (
    Decline, Digest, Digests, Ended, Fetch, Get, GetDigest, GetDigests, Join, Leave, Piece,
    Rejoin, Wait, Want, Welcome)

EXACT: list[tuple[Any, list[Any]]] = [
    (Join("r", 8, "tcp://10.0.0.2:7000"), ["swarm-join", "r", 8, "tcp://10.0.0.2:7000"]),
    (Join("r", 8, None), ["swarm-join", "r", 8, None]),
    (Welcome("r", "f.bin", 10, "k", 4, 1024), ["swarm-welcome", "r", "f.bin", 10, "k", 4, 1024]),
    (Want("r", (1, 2), ((3, "p/dl", "bad"),)), ["swarm-want", "r", [1, 2], [[3, "p/dl", "bad"]]]),
    (Fetch("r", 3, "p/dl", "tcp://h:1"), ["swarm-fetch", "r", 3, "p/dl", "tcp://h:1"]),
    (Wait("r"), ["swarm-wait", "r"]),
    (Rejoin("r"), ["swarm-rejoin", "r"]),
    (Get("r", 3), ["swarm-get", "r", 3]),
    (Piece("r", 3), ["swarm-piece", "r", 3]),
    (Decline("r", -1, "bad request"), ["swarm-decline", "r", -1, "bad request"]),
    (GetDigests("r", 0), ["swarm-get-digests", "r", 0]),
    (Digests("r", 0, ("aa", "bb")), ["swarm-digests", "r", 0, ["aa", "bb"]]),
    (GetDigest("r"), ["swarm-get-digest", "r"]),
    (Digest("r", "d"), ["swarm-digest", "r", "d"]),
    (Leave("r", True, 10, 0, False), ["swarm-leave", "r", True, 10, 0, False]),
    (Ended("r"), ["swarm-ended", "r"]),
]


@pytest.mark.parametrize(("message", "body"), EXACT)
def test_each_kind_has_one_exact_body_and_reads_back_through_msgpack(
        message: Any, body: list[Any]) -> None:
    assert pullcodec.encode(message) == body
    wired = msgpack.unpackb(msgpack.packb(body), use_list=True)
    assert pullcodec.is_pull_swarm(wired)
    assert pullcodec.decode(wired) == message


BAD: list[Any] = [
    [], ["swarm-nope", "r"], ["swarm-get", "r"], ["swarm-get", "r", -1],
    ["swarm-get", "r", "3"], ["swarm-join", "r", 8, 5], ["swarm-join", "r", 8, "x" * 5000],
    ["swarm-want", "r", [1, -2], []], ["swarm-want", "r", [], [[1, "p"]]],
    ["swarm-want", "r", list(range(pullcodec.MAX_REPORT + 1)), []],
    ["swarm-leave", "r", 1, 0, 0, True], ["swarm-digests", "r", 0, [1, 2]],
    ["swarm-decline", "r", -2, "x"], ["swarm-welcome", "r", "f", 10, "k", 4, 2**64],
]


@pytest.mark.parametrize("body", BAD)
def test_a_malformed_body_is_refused(body: Any) -> None:
    with pytest.raises(RemoteProtocolError):
        pullcodec.decode(body)


@given(st.lists(st.one_of(st.text(max_size=20), st.integers(), st.none(), st.booleans(),
                          st.lists(st.integers(), max_size=3)), max_size=7))
def test_any_body_is_either_a_message_or_refused(body: list[Any]) -> None:
    try:
        message = pullcodec.decode(["swarm-want", *body])
    except RemoteProtocolError:
        return
    assert isinstance(message, Want)
