"""Routing between sites that are not linked: a server and clients connected only to it.

The server and the other clients are separate OS processes; the test process is the
client "c1". Every message between clients goes through the server (``actors.io.relay``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth

import actors
from actors import codec
from actors.codec import Kind
from actors.security import Curve, new_keypair
from tests.support.echo import Collector, PeerWatcher
from tests.support.procs import SiteProcess, wait_until
from tests.support.rawpeer import greet, raw_dealer

ECHO, COLLECTOR = "tests.support.echo:Echo", "tests.support.echo:Collector"
FAST = {"heartbeat_interval": 0.5, "heartbeat_timeout": 2.0}


def client(name: str, server: SiteProcess, **spawn: str) -> SiteProcess:
    """A client process linked to ``server`` only."""
    return SiteProcess(name, connect={"server": server.endpoint}, options=FAST,
                       spawn={"echo": ECHO, "collector": COLLECTOR, **spawn}).start()


@pytest.fixture(scope="module")
def star() -> Iterator[tuple[actors.Site, SiteProcess, list[SiteProcess]]]:
    """The server, the clients c2 and c3, and the test's own client c1."""
    with SiteProcess("server", spawn={"echo": ECHO}, options=FAST) as server:
        with client("c2", server) as c2, client("c3", server) as c3:
            with actors.Site("c1", connect={"server": server.endpoint}, **FAST) as c1:
                c1.spawn(Collector, "collector")
                for name in ("c2", "c3"):
                    c1.wait_for(name, 10)
                yield c1, server, [c2, c3]


def routes_of(site: actors.Site) -> dict[str, str]:
    """The routes of the site a child control actor runs in (called there)."""
    return site.routes()


@pytest.mark.timeout(30)
def test_a_client_tells_and_asks_another_client_through_the_server(star: Any) -> None:
    c1, _server, _clients = star
    assert c1.peers() == ["server"]
    assert c1.routes() == {"c2": "server", "c3": "server"}
    answer = c1.ask("c2/echo", "hello", payload=[b"x" * 100_000], timeout=10)
    assert answer == {"got": "hello", "sender": "c1", "payload": [100_000]}
    for i in range(20):
        c1.tell("c3/collector", i, payload=[bytes([i]) * 1000])
    records = wait_until(lambda: (r := c1.ask("c3/collector", "dump", timeout=5))
                         and len(r) >= 20 and r, 10)
    assert [r["body"] for r in records] == list(range(20))  # each once, in order
    assert {r["sender"] for r in records} == {"c1"}


@pytest.mark.timeout(30)
def test_a_client_reached_through_the_server_answers_back_by_its_own_route(star: Any) -> None:
    c1, _server, (c2, c3) = star
    assert c2.call(c1, "tests.actors.test_relay:routes_of") == {"c1": "server", "c3": "server"}
    c2.call(c1, "tests.actors.test_relay:tell_c1", "from c2")
    records = wait_until(lambda: c1.ask("c1/collector", "dump", timeout=5), 10)
    assert [(r["body"], r["sender"]) for r in records] == [("from c2", "c2/ctl")]


def tell_c1(site: actors.Site, body: str) -> None:
    """Tell c1's collector ``body`` (called in a child)."""
    site.tell("c1/collector", body)


@pytest.mark.timeout(30)
def test_an_unroutable_site_fails_at_once_naming_it(star: Any) -> None:
    c1, _server, _clients = star
    with pytest.raises(actors.UnknownSite, match="nowhere"):
        c1.ask("nowhere/echo", "hi", timeout=10)
    with pytest.raises(actors.UnknownSite, match="nowhere"):
        c1.tell("nowhere/echo", "hi")
    with pytest.raises(actors.UnknownSite, match="not linked to 'c3'"):
        c1.ask("c2/echo", "hi", via="c3", timeout=10)  # c3 is routed, not linked


@pytest.mark.timeout(30)
def test_a_routed_client_that_dies_fails_the_pending_ask_and_is_reported_down(
        star: Any) -> None:
    c1, server, _clients = star
    watcher = c1.spawn(PeerWatcher, "watcher")
    with client("doomed", server, silent="tests.support.echo:Silent") as doomed:
        c1.wait_for("doomed", 10)
        wait_until(lambda: ["PeerUp", "doomed"] in watcher.ask("events"), 5)
        assert c1.state_of("doomed") == actors.PeerState("up", "", "server")
        pending = c1.ask("doomed/silent", "hang", timeout=25, block=False)
        # One path, in order: once an echo sent after it is answered, the hanging ask
        # is at doomed (killed earlier, the relay would answer "no route" instead).
        assert c1.ask("doomed/echo", "after", timeout=10)["got"] == "after"
        doomed.kill()
        with pytest.raises(actors.PeerLost, match="doomed"):
            pending.result(20)  # well before the ask's own timeout
    state = c1.state_of("doomed")
    assert state is not None and state.kind == "lost" and "server" in state.reason
    assert "doomed" not in c1.routes()
    wait_until(lambda: ["PeerDown", "doomed"] in watcher.ask("events"), 5)
    watcher.stop()


@pytest.mark.timeout(30)
def test_a_client_cannot_forge_another_clients_origin_through_the_server(
        star: Any, context: zmq.Context) -> None:
    c1, server, _clients = star
    mallory = raw_dealer(context, server.endpoint)
    greet(mallory, "mallory", "m1")
    c1.wait_for("mallory", 10)

    def routed(origin: str, sender: str, body: str) -> bytes:
        inner = codec.encode(Kind.TELL, "collector", sender, 0, body)
        return codec.encode(Kind.ROUTED, sender="mallory", body=["c1", origin, 1, inner])

    mallory.send(routed("c2", "c2", "forged origin"))
    mallory.send(routed("mallory", "c2/echo", "forged sender"))
    mallory.send(routed("mallory", "mallory", "honest"))
    records = wait_until(lambda: [r for r in c1.ask("c1/collector", "dump", timeout=5)
                                  if r["body"] == "honest"], 10)
    bodies = [r["body"] for r in c1.ask("c1/collector", "dump", timeout=5)]
    assert "forged origin" not in bodies and "forged sender" not in bodies
    assert records[0]["sender"] == "mallory"


@pytest.mark.timeout(40)
def test_a_triangle_neither_loops_nor_duplicates_follows_via_and_forgets_a_lost_corner() -> None:
    with SiteProcess("a", options=FAST, spawn={"echo": ECHO}) as a:
        with SiteProcess("b", connect={"a": a.endpoint}, options=FAST,
                         spawn={"echo": ECHO}) as b:
            with SiteProcess("c", connect={"a": a.endpoint, "b": b.endpoint}, options=FAST,
                             spawn={"collector": COLLECTOR}) as c:
                with actors.Site("t", connect={"a": a.endpoint, "b": b.endpoint},
                                 **FAST) as t:
                    # c has two equal routes (through a and through b): t keeps the
                    # one it learned first, which depends on which link came up first
                    wait_until(lambda: t.peers() == ["a", "b"] and "c" in t.routes(), 10)
                    first = t.routes()["c"]
                    assert first in ("a", "b")
                    other = "b" if first == "a" else "a"
                    for i in range(30):
                        t.tell("c/collector", i, via=other if i >= 15 else None)
                    assert t.routes() == {"c": other}  # named by the app, it sticks
                    records = wait_until(lambda: (r := t.ask("c/collector", "dump", timeout=5))
                                         and len(r) >= 30 and r, 10)
                    bodies = [r["body"] for r in records]
                    assert sorted(bodies) == list(range(30))  # each once: no loop, no copy
                    # in order along each path (the two paths may interleave)
                    assert [n for n in bodies if n < 15] == list(range(15))
                    assert [n for n in bodies if n >= 15] == list(range(15, 30))
                    c.kill()
                    wait_until(lambda: "c" not in t.routes()
                               and "c" not in b.call(t, "tests.actors.test_relay:routes_of"),
                               15)
                    with pytest.raises((actors.UnknownSite, actors.PeerLost)):
                        t.ask("c/collector", "dump", timeout=10)
                    assert t.ask("b/echo", "still here", timeout=10)["got"] == "still here"


@pytest.mark.timeout(40)
def test_a_relay_holds_a_bounded_backlog_and_refuses_an_ask_past_it_at_its_origin() -> None:
    bounded = {"max_unacked_bytes": 4 << 20, "max_peer_pending_bytes": 4 << 20,
               "heartbeat_timeout": 30.0, "stalled_peer_timeout": 60.0}
    with SiteProcess("server", options=bounded) as server:
        with client("c2", server) as c2:
            with actors.Site("c1", connect={"server": server.endpoint}, **FAST) as c1:
                c1.wait_for("c2", 10)
                os.kill(c2.pid, signal.SIGSTOP)  # it reads nothing: the server's queue grows
                try:
                    chunk = b"\0" * (1 << 20)
                    for _ in range(96):
                        c1.tell("c2/collector", "chunk", payload=[chunk])
                    with pytest.raises(actors.MailboxFull, match="relay server"):
                        c1.ask("c2/collector", "dump", timeout=20)
                    _rss, peak = server.memory()
                    assert peak < 96 << 20  # it did not take in all it was sent
                finally:
                    os.kill(c2.pid, signal.SIGCONT)


def _allow(tmp_path: Path, keys: Path, owner: str, *names: str) -> Path:
    """An allow folder for ``owner`` with the public keys of ``names``."""
    folder = tmp_path / f"allow-{owner}"
    folder.mkdir()
    for name in names:
        (folder / f"{name}.key").write_bytes((keys / f"{name}.key").read_bytes())
    return folder


@pytest.mark.timeout(40)
def test_with_curve_a_trusted_client_cannot_forge_an_origin_nor_reach_a_site_that_distrusts_it(
        tmp_path: Path, context: zmq.Context) -> None:
    keys = tmp_path / "keys"
    for name in ("server", "c1", "c2", "mallory"):
        new_keypair(name, keys)
    allow = ["--keys", str(keys), "--allow"]
    server_args = [*allow, str(_allow(tmp_path, keys, "server", "c1", "c2", "mallory"))]
    with SiteProcess("server", spawn={"echo": ECHO}, options=FAST,
                     extra_args=server_args) as server:
        c2_args = [*allow, str(_allow(tmp_path, keys, "c2", "server", "c1"))]
        with SiteProcess("c2", connect={"server": server.endpoint}, options=FAST,
                         extra_args=c2_args).start() as c2:
            curve = Curve.from_dirs("c1", keys, _allow(tmp_path, keys, "c1", "server", "c2"))
            with actors.Site("c1", connect={"server": server.endpoint}, curve=curve,
                             **FAST) as c1:
                c1.spawn(Collector, "collector")
                c1.wait_for("c2", 10)
                assert "mallory" not in c1.routes()  # a site c1 does not trust: no route
                mallory = _curve_dealer(context, server.endpoint, keys)
                greet(mallory, "mallory", "m1")

                def routed(origin: str, body: str) -> bytes:
                    inner = codec.encode(Kind.TELL, "collector", origin, 0, body)
                    return codec.encode(Kind.ROUTED, sender="mallory",
                                        body=["c1", origin, 1, inner])

                mallory.send(routed("c2", "forged origin"))
                mallory.send(routed("mallory", "from an untrusted origin"))
                # Its ask answered, the server has handled what mallory sent before it.
                mallory.send(codec.encode(Kind.ASK, "echo", "mallory", 1, "sync"))
                assert codec.decode(_next_reply(mallory)).kind is Kind.REPLY
                c2.call(c1, "tests.actors.test_relay:tell_c1", "from c2")
                records = wait_until(lambda: c1.ask("c1/collector", "dump", timeout=5), 10)
                assert [(r["body"], r["sender"]) for r in records] == [("from c2", "c2/ctl")]


def _curve_dealer(context: zmq.Context, endpoint: str, keys: Path) -> zmq.Socket:
    """A raw DEALER with mallory's keys, which the server trusts."""
    public, secret = zmq.auth.load_certificate(str(keys / "mallory.key_secret"))
    server_key, _ = zmq.auth.load_certificate(str(keys / "server.key"))
    assert secret is not None
    return raw_dealer(context, endpoint, curve=(public, secret, server_key))


def _next_reply(sock: zmq.Socket) -> bytes:
    """The next REPLY or FAIL header on ``sock`` (pings and announcements skipped)."""
    while True:
        head = sock.recv_multipart()[0]
        try:
            kind = codec.decode(head).kind
        except actors.CodecError:
            continue
        if kind in (Kind.REPLY, Kind.FAIL):
            return head
