"""Fixtures shared by the tests: a site in the test process, cleaned up loudly."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pykka
import pytest
import zmq

import actors
from tests.support.procs import hub_site


@pytest.fixture
def site() -> Iterator[actors.Site]:
    """A site named "test" bound to an OS-chosen port on 127.0.0.1."""
    with hub_site() as test_site:
        yield test_site


@pytest.fixture(scope="module")
def hub() -> Iterator[actors.Site]:
    """The test's own site "test", one per test module; it detects a lost peer within ~2 s."""
    with hub_site() as site:
        yield site


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    """A ZeroMQ context for a test's raw sockets, destroyed with them after the test."""
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def no_thread_leaks() -> Iterator[None]:
    """Fail the test if it leaves threads running."""
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in leftover:
        thread.join(2.0)
    leftover = [t.name for t in leftover if t.is_alive()]
    assert not leftover, f"threads left running: {leftover}"


@pytest.hookimpl(trylast=True)  # after pytest's own teardown of fixtures still up
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if an actor outlived every test and fixture: it names the leak.

    Every site is stopped by now, so a live actor is one a site never stopped (CI once
    ran out of time on such a leak, when actor threads still held the process open).
    """
    alive = [str(ref) for ref in pykka.ActorRegistry.get_all()]
    if alive:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", "actors left running after the tests", red=True)
            reporter.write_line(", ".join(alive), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
