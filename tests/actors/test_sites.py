"""Sites in separate OS processes over 127.0.0.1: tell, ask, errors, bulk payloads."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator

import pytest

import actors
from tests.support.echo import Echo, PeerWatcher
from tests.support.procs import SiteProcess, wait_until

ECHO = "tests.support.echo:Echo"
COLLECTOR = "tests.support.echo:Collector"


@pytest.fixture
def beta(site: actors.Site) -> Iterator[SiteProcess]:
    """A child site "beta" that connected to the test site (the test site only listens)."""
    with SiteProcess("beta", connect={"test": site.endpoint},
                     spawn={"echo": ECHO, "collector": COLLECTOR}) as child:
        site.wait_for("beta", timeout=10)
        yield child


def test_ask_answers_with_message_sender_and_payload(site: actors.Site, beta: SiteProcess) -> None:
    answer = site.ask("beta/echo", {"n": [1, 2]}, payload=[b"abc", b"de"], timeout=10)
    assert answer == {"got": {"n": [1, 2]}, "sender": "test", "payload": [3, 2]}


def test_tell_arrives(site: actors.Site, beta: SiteProcess) -> None:
    site.tell("beta/collector", "hello")
    records = wait_until(lambda: site.ask("beta/collector", "dump", timeout=10), 10)
    assert records == [{"body": "hello", "sender": "test", "digests": []}]


def test_ask_to_unknown_actor_fails_at_once(site: actors.Site, beta: SiteProcess) -> None:
    started = time.monotonic()
    with pytest.raises(actors.UnknownActor, match="beta/nobody"):
        site.ask("beta/nobody", "x", timeout=30)
    assert time.monotonic() - started < 10


def test_ask_to_unknown_site_fails_at_once(site: actors.Site) -> None:
    with pytest.raises(actors.UnknownSite, match="nowhere"):
        site.ask("nowhere/echo", "x", timeout=30)
    with pytest.raises(actors.UnknownSite):
        site.tell("nowhere/echo", "x")


def test_remote_exception_is_raised_with_its_type_and_text(site: actors.Site,
                                                           beta: SiteProcess) -> None:
    with pytest.raises(actors.ActorError) as caught:
        site.ask("beta/echo", "raise", timeout=10)
    assert caught.value.kind == "ValueError"
    assert caught.value.text == "asked to raise"
    assert caught.value.address == "beta/echo"


@pytest.mark.parametrize("where", ["beta", "test"])
def test_a_runtime_error_the_actor_raised_is_its_error_not_the_askers(
        site: actors.Site, beta: SiteProcess, where: str) -> None:
    """An actor that raises UnknownSite (its own ask failed, say) gives the asker an
    ActorError naming it, remote or local alike: the site the asker asked is known."""
    site.spawn(Echo, "echo")
    with pytest.raises(actors.ActorError) as caught:
        site.ask(f"{where}/echo", "raise a runtime error", timeout=10)
    assert caught.value.kind == "UnknownSite"
    assert caught.value.text == "no site named 'elsewhere'"
    assert caught.value.address == f"{where}/echo"


def test_64_payloads_of_1_mib_arrive_intact_and_in_order(site: actors.Site,
                                                         beta: SiteProcess) -> None:
    chunks = [os.urandom(1 << 20) for _ in range(64)]
    for index, chunk in enumerate(chunks):
        site.tell("beta/collector", index, payload=[chunk])
    records = wait_until(lambda: (r := site.ask("beta/collector", "dump", timeout=10))
                         and len(r) == 64 and r, 30)
    assert [r["body"] for r in records] == list(range(64))
    assert [r["digests"][0] for r in records] == [hashlib.sha256(c).hexdigest() for c in chunks]


def test_a_burst_of_small_tells_asks_and_payloads_arrives_whole_and_in_order(
        site: actors.Site, beta: SiteProcess) -> None:
    """Small messages sent in a burst travel bundled (actors.io.bundler); the ones with
    payload, and the asks answered between them, keep their places."""
    sent = []
    for index in range(400):  # the dump's answer is one header: at most 64 KiB of records
        if index % 100 == 50:
            assert site.ask("beta/echo", index, timeout=10)["got"] == index
        payload = [index.to_bytes(4, "big")] if index % 37 == 0 else []
        site.tell("beta/collector", index, payload=payload)
        sent.append((index, [hashlib.sha256(p).hexdigest() for p in payload]))
    records = wait_until(lambda: (r := site.ask("beta/collector", "dump", timeout=10))
                         and len(r) == len(sent) and r, 30)
    assert [(r["body"], r["digests"]) for r in records] == sent


def test_server_sends_to_client_over_the_clients_connection(site: actors.Site,
                                                            beta: SiteProcess) -> None:
    # The test site never connected to beta: it only has beta's inbound connection.
    assert site.ask("beta/echo", "over your link", timeout=10)["got"] == "over your link"
    # ...and beta's actors reach the test site's actors the same way.
    site.spawn(Echo, "echo")
    answer = beta.call(site, "actors.site:Site.ask", "test/echo", "back", timeout=10)
    assert answer["got"] == "back" and answer["sender"] == "beta/ctl"


def test_three_sites_route_between_each_other(site: actors.Site) -> None:
    with SiteProcess("b", connect={"test": site.endpoint}, spawn={"echo": ECHO}) as b:
        with SiteProcess("c", connect={"test": site.endpoint, "b": b.endpoint},
                         spawn={"echo": ECHO}) as c:
            site.wait_for("b", 10)
            site.wait_for("c", 10)
            assert site.ask("b/echo", 1, timeout=10)["got"] == 1
            assert site.ask("c/echo", 2, timeout=10)["got"] == 2
            via_c = c.call(site, "actors.site:Site.ask", "b/echo", 3, timeout=10)
            assert via_c == {"got": 3, "sender": "c/ctl", "payload": []}
            # c connected to b, so b reaches c over c's connection.
            via_b = b.call(site, "actors.site:Site.ask", "c/echo", 4, timeout=10)
            assert via_b["got"] == 4 and via_b["sender"] == "b/ctl"


def test_kill_9_is_noticed_within_5_s_and_fails_the_pending_ask(site: actors.Site) -> None:
    with SiteProcess("doomed", connect={"test": site.endpoint},
                     spawn={"silent": "tests.support.echo:Silent"}) as doomed:
        site.wait_for("doomed", 10)
        watcher = site.spawn(PeerWatcher, "watcher")
        pending = site.ask("doomed/silent", "hang", timeout=60, block=False)
        started = time.monotonic()
        doomed.kill()
        with pytest.raises(actors.PeerLost):
            pending.result(timeout=10)
        assert time.monotonic() - started < 5
        wait_until(lambda: ["PeerDown", "doomed"] in watcher.ask("events"), 5)
        with pytest.raises(actors.PeerLost):
            site.ask("doomed/silent", "again", timeout=5)


def test_client_notices_a_killed_server_and_relinks_when_it_restarts() -> None:
    with SiteProcess("server", spawn={"echo": ECHO}) as server:
        with actors.Site("client", connect={"server": server.endpoint},
                         heartbeat_interval=0.5, heartbeat_timeout=2.0) as client:
            assert client.ask("server/echo", 1, timeout=10)["got"] == 1
            server.kill()
            wait_until(lambda: "server" not in client.peers(), 5)
            with SiteProcess("server", bind=server.endpoint, spawn={"echo": ECHO}):
                client.wait_for("server", 10)
                assert client.ask("server/echo", 2, timeout=10)["got"] == 2
