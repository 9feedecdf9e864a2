"""What the I/O thread sends for a batch of queued messages: small ones bundled per peer, in order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actors import codec
from actors.codec import Kind
from actors.io.bundler import MAX_BUNDLE_BYTES, MAX_BUNDLED_HEADER, Bundler
from actors.io.peers import Peers


def _tell(to: str, n: int, pad: int = 0) -> bytes:
    return codec.encode(Kind.TELL, to, "us", 0, {"n": n, "pad": "x" * pad})


def _bundler(*up: str) -> tuple[Bundler, list[tuple[str, list[Any]]]]:
    peers = Peers()
    for name in ("alpha", "beta", "gamma"):
        peers.add(name).up = name in up
    sent: list[tuple[str, list[Any]]] = []

    def send(name: str, frames: Sequence[Any]) -> None:
        sent.append((name, list(frames)))

    return Bundler(peers, send), sent


def _messages(sent: list[tuple[str, list[Any]]], peer: str) -> list[object]:
    """What ``peer`` gets, message by message: bundles opened, payload parts listed."""
    got: list[object] = []
    for name, frames in sent:
        if name != peer:
            continue
        header = codec.decode(frames[0])
        if header.kind is Kind.BUNDLE:
            got += [inner.body["n"] for inner in codec.unbundle(header.body)]
        else:
            got.append((header.body["n"], frames[1:]) if len(frames) > 1 else header.body["n"])
    return got


def test_small_messages_for_one_peer_go_as_one_bundle_and_a_lone_one_as_itself() -> None:
    bundler, sent = _bundler("alpha", "beta")
    for n in range(5):
        bundler.send("alpha", _tell("x", n), ())
    bundler.send("beta", _tell("x", 9), ())
    assert sent == []  # nothing goes before the batch ends
    bundler.flush()
    assert [name for name, _ in sent] == ["alpha", "beta"]
    assert codec.decode(sent[0][1][0]).kind is Kind.BUNDLE
    assert _messages(sent, "alpha") == [0, 1, 2, 3, 4]
    assert sent[1] == ("beta", [_tell("x", 9)])  # alone: not wrapped


def test_a_message_with_payload_goes_after_what_was_gathered_for_its_peer() -> None:
    bundler, sent = _bundler("alpha", "beta")
    bundler.send("alpha", _tell("x", 0), ())
    bundler.send("beta", _tell("x", 10), ())
    bundler.send("alpha", _tell("x", 1), ())
    bundler.send("alpha", _tell("x", 2), (b"payload",))
    bundler.send("alpha", _tell("x", 3), ())
    bundler.flush()
    assert _messages(sent, "alpha") == [0, 1, (2, [b"payload"]), 3]
    assert _messages(sent, "beta") == [10]


def test_large_headers_and_peers_not_linked_are_never_bundled() -> None:
    bundler, sent = _bundler("alpha")
    big = _tell("x", 1, pad=MAX_BUNDLED_HEADER)
    bundler.send("alpha", _tell("x", 0), ())
    bundler.send("alpha", big, ())
    bundler.send("gamma", _tell("x", 5), ())  # down: its messages go through a relay
    bundler.send("gamma", _tell("x", 6), ())
    bundler.flush()
    assert sent == [("alpha", [_tell("x", 0)]), ("alpha", [big]),
                    ("gamma", [_tell("x", 5)]), ("gamma", [_tell("x", 6)])]


def test_a_bundle_stays_under_its_byte_bound() -> None:
    bundler, sent = _bundler("alpha")
    header = _tell("x", 0, pad=1000)
    count = 3 * MAX_BUNDLE_BYTES // len(header)
    for n in range(count):
        bundler.send("alpha", _tell("x", n, pad=1000), ())
    bundler.flush()
    assert len(sent) >= 3
    assert all(len(frames[0]) <= MAX_BUNDLE_BYTES + 64 for _, frames in sent)
    assert _messages(sent, "alpha") == list(range(count))
