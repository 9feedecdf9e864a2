"""Log lines a peer can cause come at a bounded rate, and what was left out is counted."""

from __future__ import annotations

import logging
import time

import pytest

from actors.ratelog import LogLimit


def test_a_flood_logs_a_few_lines_per_call_site_then_one_count(
        caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.ratelog")
    caplog.set_level(logging.INFO, logger="test.ratelog")
    limit = LogLimit(logger, burst=3, interval=60.0)
    for index in range(10_000):
        limit.warning("bad message %d", index)
        limit.info("peer %s up", index)
    assert [r.getMessage() for r in caplog.records] == [
        "bad message 0", "peer 0 up", "bad message 1", "peer 1 up", "bad message 2",
        "peer 2 up"]
    limit.flush(time.monotonic() + 61)
    assert [r.getMessage() for r in caplog.records[6:]] == [
        "9997 more lines like 'bad message %d' left out in 60 s",
        "9997 more lines like 'peer %s up' left out in 60 s"]
    limit.warning("bad message %d", -1)  # a new interval: logged again
    assert caplog.records[-1].getMessage() == "bad message -1"


def test_lines_below_the_logger_level_cost_no_budget(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.ratelog.quiet")
    caplog.set_level(logging.WARNING, logger="test.ratelog.quiet")
    limit = LogLimit(logger, burst=1)
    limit.info("not shown")
    limit.flush(time.monotonic() + 3600)
    assert caplog.records == []
