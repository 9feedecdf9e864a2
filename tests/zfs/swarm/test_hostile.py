"""A relay facing a hostile or broken peer: it refuses, fails the stream, and goes on serving.

In-process sites over real sockets on 127.0.0.1: the "peer" is an actor that sends
whatever bodies the test gives it and records what comes back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

import actors
from tests.support.faults import CHANNEL, CHUNK, make_file, partials
from tests.support.mouth import Mouth
from tests.support.procs import wait_until
from zfs import push_file, register_receiver
from zfs.files import file_digest
from zfs.swarm.relay import RELAY


def _open(stream: str, members: list[str], endpoints: list[str], name: str) -> list[Any]:
    return ["swarm-open", stream, 0, members, name, 10, 4, 1, 1, 30.0, CHANNEL, "bad",
            endpoints, "evil", None]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[actors.Site, actors.Site]]:
    """A target site "t" taking pushes into tmp_path/t, and a peer "evil" linked to it."""
    with actors.Site("t", bind="tcp://127.0.0.1:0") as target:
        (tmp_path / "t").mkdir()
        register_receiver(target, channel=CHANNEL, topic="bad", dest_dir=str(tmp_path / "t"))
        with actors.Site("evil", connect={"t": str(target.endpoint)}) as evil:
            evil.wait_for("t", timeout=10)
            yield target, evil


@pytest.mark.timeout(30)
def test_bad_bodies_are_dropped_bad_opens_refused_and_the_site_still_serves(
        pair: tuple[actors.Site, actors.Site], tmp_path: Path) -> None:
    target, evil = pair
    mouth = evil.spawn(Mouth, "m")
    to = f"t/{RELAY}"
    for body in ([], ["swarm-open"], ["swarm-chunk", "nosuch", 0], ["swarm-ack", 1, 2, 3],
                 _open("s0", ["t"], [], "f.bin"),
                 _open("s1", ["t"], [""], "../escape.bin"),
                 _open("s2", ["t"], [""], ".zfs-partial")):
        mouth.tell({"to": to, "body": body, "payload": (b"x" * 4,)})
    heard = wait_until(lambda: len(mouth.ask("heard")) >= 2 and mouth.ask("heard"), 10)
    assert [h[0] for h in heard] == ["swarm-failed", "swarm-failed"]
    assert {h[1] for h in heard} == {"s1", "s2"} and {h[3] for h in heard} == {"refused"}
    assert not (tmp_path / "escape.bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
    src = make_file(tmp_path / "after.bin", 300_000)
    assert push_file(evil, "t", src, channel=CHANNEL, topic="bad", chunk_size=CHUNK,
                     swarm=True).route == "swarm"
    assert file_digest(tmp_path / "t" / "after.bin") == file_digest(src)


@pytest.mark.timeout(30)
def test_a_child_that_cannot_be_dialled_fails_the_stream_as_unreachable_naming_it(
        pair: tuple[actors.Site, actors.Site], tmp_path: Path) -> None:
    target, evil = pair
    mouth = evil.spawn(Mouth, "m")
    body = _open("s3", ["t", "nobody"], ["", "tcp://127.0.0.1:1"], "f.bin")
    mouth.tell({"to": f"t/{RELAY}", "body": body})
    heard = wait_until(lambda: [h for h in mouth.ask("heard") if h[0] == "swarm-failed"], 15)
    assert heard[0][1:4] == ["s3", "nobody", "unreachable"]
    wait_until(lambda: partials(tmp_path / "t") == [], 5)
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == []
