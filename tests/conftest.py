"""Fixtures shared by the tests: a site in the test process, cleaned up loudly."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import actors


@pytest.fixture
def site() -> Iterator[actors.Site]:
    """A site named "test" bound to an OS-chosen port on 127.0.0.1."""
    with actors.Site("test", bind="tcp://127.0.0.1:0", heartbeat_interval=0.5,
                     heartbeat_timeout=2.0) as test_site:
        yield test_site


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
