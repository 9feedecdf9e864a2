"""Any pykka actor works on a site, and a spawn that fails leaves nothing behind.

Each site lives in its own OS process; the test process asks across real sockets.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import actors
from tests.support.procs import SiteProcess


@pytest.fixture(scope="module")
def plain_site(hub: actors.Site) -> Iterator[SiteProcess]:
    with SiteProcess("plain", connect={"test": str(hub.endpoint)},
                     spawn={"echo": "tests.support.echo:PlainEcho"}) as child:
        hub.wait_for("plain", timeout=20)
        yield child


def test_a_plain_pykka_actor_gets_each_message_as_sent_and_answers_asks(
        hub: actors.Site, plain_site: SiteProcess) -> None:
    hub.tell("plain/echo", {"n": 1})
    hub.tell("plain/echo", ["two", 2])
    assert hub.ask("plain/echo", "three", timeout=10) == {"echo": "three"}
    assert hub.ask("plain/echo", "told", timeout=10) == [{"n": 1}, ["two", 2], "three"]


def test_a_plain_pykka_actors_exception_reaches_the_asker_as_actor_error(
        hub: actors.Site, plain_site: SiteProcess) -> None:
    with pytest.raises(actors.ActorError) as caught:
        hub.ask("plain/echo", "boom", timeout=10)
    assert caught.value.kind == "KeyError" and caught.value.address == "plain/echo"
    assert hub.ask("plain/echo", "still here", timeout=10) == {"echo": "still here"}


def test_a_failed_init_leaves_the_name_free_and_raises_the_actors_own_error(
        hub: actors.Site, plain_site: SiteProcess) -> None:
    before = plain_site.call(hub, "tests.support.echo:spawn_after_a_failed_start", "job")
    assert before["raised"] == "RuntimeError: cannot start: no config"
    assert before["free"] is True and before["answer"] == "hi"
    again = plain_site.call(hub, "tests.support.echo:spawn_after_a_failed_start", "job2")
    # Nothing of the failed actor is left registered (ctl, echo, job; no phantom "job2").
    assert again["known_after_failure"] == before["known_after_failure"] + 1
