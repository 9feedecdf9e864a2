"""Fixtures shared by the tests: a site in the test process, cleaned up loudly."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

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
def no_thread_leaks() -> Iterator[None]:
    """Fail the test if it leaves threads running."""
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in leftover:
        thread.join(2.0)
    leftover = [t.name for t in leftover if t.is_alive()]
    assert not leftover, f"threads left running: {leftover}"
