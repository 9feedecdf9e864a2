"""The supervisor: ticks to registered actors, and restarts of crashed actors."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import actors
from tests.support.procs import wait_until
from zfs.supervisor import (NAME, Registrations, SupervisorActor, Tick, ensure_supervisor,
                            report_crash, revive, supervise, unsupervise, watch_time)


@pytest.fixture
def local_site() -> Iterator[actors.Site]:
    with actors.Site("sup") as site:
        yield site


class Clock(actors.Actor):
    """Records the ticks it gets; crashes on "crash"; reports like a supervised actor."""

    def __init__(self, ticks: list[float], starts: list[int], report: bool = True) -> None:
        super().__init__()
        self.ticks, self.report = ticks, report
        starts.append(1)

    def on_start(self) -> None:
        watch_time(self.site, self.name)

    def on_stop(self) -> None:
        unsupervise(self.site, self.name)

    def on_failure(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.report:
            report_crash(self.site, self.name, exc)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Tick):
            self.ticks.append(message.now)
        elif message == "crash":
            raise RuntimeError("asked to crash")
        return None


def test_ensure_supervisor_spawns_one_actor_whatever_the_threads(local_site: actors.Site) -> None:
    refs: list[Any] = []
    threads = [threading.Thread(target=lambda: refs.append(ensure_supervisor(local_site)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(refs) == 8 and len({id(r.actor_ref) for r in refs}) == 1
    assert all(r == local_site.actor(NAME) for r in refs)
    assert refs[0].actor_ref.actor_class is SupervisorActor


def test_registered_actor_gets_ticks_with_monotonic_now(local_site: actors.Site) -> None:
    ensure_supervisor(local_site, tick_interval=0.05)
    ticks: list[float] = []
    before = time.monotonic()
    local_site.spawn(Clock, "clock", ticks, [])
    wait_until(lambda: len(ticks) >= 3, timeout=5)
    assert before <= ticks[0] <= ticks[1] <= ticks[2] <= time.monotonic()


def test_dead_watcher_is_forgotten(local_site: actors.Site) -> None:
    sup = ensure_supervisor(local_site, tick_interval=0.05)
    ticks: list[float] = []
    local_site.spawn(Clock, "clock", ticks, []).stop()
    wait_until(lambda: "clock" not in sup.ask(Registrations())["watching"], timeout=5)


def test_crashed_actor_is_restarted_and_the_reason_logged(
        local_site: actors.Site, caplog: pytest.LogCaptureFixture) -> None:
    ensure_supervisor(local_site, tick_interval=0.05)
    ticks: list[float] = []
    starts: list[int] = []
    ref = local_site.spawn(Clock, "clock", ticks, starts)
    supervise(local_site, "clock", Clock, ticks, starts)
    with caplog.at_level(logging.WARNING, logger="zfs.supervisor"):
        ref.actor_ref.tell("crash")  # through pykka: an exception crashes it
        wait_until(lambda: len(starts) == 2 and local_site.actor("clock") is not None, 5)
    assert "asked to crash" in caplog.text
    new = local_site.actor("clock")
    assert new != ref
    n = len(ticks)
    wait_until(lambda: len(ticks) > n, timeout=5)   # the new one registered for ticks again


def test_actor_found_dead_without_a_report_is_restarted(local_site: actors.Site) -> None:
    ensure_supervisor(local_site, tick_interval=0.05)
    starts: list[int] = []
    ref = local_site.spawn(Clock, "clock", [], starts, report=False)
    supervise(local_site, "clock", Clock, [], starts, report=False)
    ref.actor_ref.tell("crash")  # through pykka: an exception crashes it
    wait_until(lambda: len(starts) == 2 and local_site.actor("clock") is not None, 5)


def test_revive_restarts_a_dead_supervised_actor_at_once(local_site: actors.Site) -> None:
    ensure_supervisor(local_site, tick_interval=60.0)     # no beat will come to help
    starts: list[int] = []
    ref = local_site.spawn(Clock, "clock", [], starts, report=False)
    supervise(local_site, "clock", Clock, [], starts, report=False)
    ref.actor_ref.tell("crash")  # through pykka: an exception crashes it
    wait_until(lambda: not ref.is_alive(), timeout=5)
    assert revive(local_site, "clock")
    assert len(starts) == 2 and local_site.actor("clock") is not None
    assert not revive(local_site, "unknown")


def test_actor_stopped_on_purpose_is_not_restarted(local_site: actors.Site) -> None:
    sup = ensure_supervisor(local_site, tick_interval=0.05)
    starts: list[int] = []
    ticks: list[float] = []
    ref = local_site.spawn(Clock, "clock", ticks, starts)
    supervise(local_site, "clock", Clock, ticks, starts)
    wait_until(lambda: "clock" in sup.ask(Registrations())["supervising"], timeout=5)
    ref.stop()
    wait_until(lambda: "clock" not in sup.ask(Registrations())["supervising"], timeout=5)
    wait_until(lambda: sup.ask(Registrations())["watching"] == [], timeout=5)
    assert starts == [1] and local_site.actor("clock") is None


def test_supervisor_stops_with_its_site(no_thread_leaks: None) -> None:
    with actors.Site("short") as site:
        ensure_supervisor(site, tick_interval=0.05)
    wait_until(lambda: not any(t.name == f"{NAME}.beat" and t.is_alive()
                               for t in threading.enumerate()), timeout=5)


@pytest.mark.timeout(20)
def test_an_actor_starting_while_its_site_stops_starts_without_ticks() -> None:
    """watch_time from an actor's on_start on a site that is stopping (seen at the end of
    a CLI run: a receiver started as the site stopped logged a traceback) does not raise."""
    site = actors.Site("stopping").start()
    site.stop()
    with pytest.raises(actors.SiteClosed):
        ensure_supervisor(site)           # what watch_time met
    watch_time(site, "late")              # no error: nothing to tick on a stopped site
