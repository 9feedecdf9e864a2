"""The screen: progress bars in a 74-column terminal, read back through a pseudo-terminal.

Bars fit the line (a long file name gives way, the numbers stay), speak decimal units
as every summary does, stop when the command ends (Ctrl-C included), and a resumed
pull's bar and summary count only what that run moved.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.procs import wait_until
from tests.zfs.cli.conftest import Terminal, data, receiving_site, screen_lines, sharing
from zfs.cli.settings import format_size
from zfs.files import file_digest

__all__ = ["receiving_site"]  # the fixture, used by name below

COLUMNS = 74
_RATE = re.compile(r"([\d.]+)([kMGT]?)B/s")
_SCALE = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def bar_lines(output: str) -> list[str]:
    return [line.rstrip() for line in screen_lines(output) if "%|" in line]


def rates(lines: list[str]) -> list[float]:
    """Every rate the bars showed, in bytes per second."""
    return [float(value) * _SCALE[unit] for line in lines
            for value, unit in _RATE.findall(line)]


@pytest.mark.timeout(60)
def test_a_long_name_gives_way_in_a_narrow_terminal_and_units_are_decimal(
        receiving_site: tuple[object, str, Path, Path], tmp_path: Path) -> None:
    _, endpoint, inbox, log = receiving_site
    name = "quarterly-report-of-the-northern-region-with-every-appendix-" + "x" * 40 + ".bin"
    source = data(tmp_path / name, 3 << 20)
    screen = Terminal("push", str(source), "--to", "alice", "--connect", f"alice={endpoint}",
                      "--channel", "demo", "--topic", "files", "--bwlimit", "4MB/s",
                      "--chunk-size", "256KiB", columns=COLUMNS)
    try:
        assert screen.finish() == 0, screen.output
    finally:
        screen.close()
    bars = bar_lines(screen.output)
    assert bars, screen.output
    for line in bars:
        assert len(line) <= COLUMNS, line
        assert "alice" in line and "%|" in line and re.search(r"[kMG]?B/s", line), line
    assert any("100%" in line for line in bars)
    assert not re.search(r"[KMG]iB", screen.output), screen.output
    summary = next(line for line in screen_lines(screen.output) if line.startswith("pushed"))
    assert f"({format_size(3 << 20)}) in" in summary and summary.endswith("MB/s)")
    assert file_digest(inbox / name) == file_digest(source)
    # The receiving site said when the file started and when it was in place, with its rate.
    wait_until(lambda: "received " + name in log.read_text(), 10)
    text = log.read_text()
    assert f"receiving {name} ({format_size(3 << 20)}) from" in text
    assert re.search(rf"received {re.escape(name)} \(3\.1 MB\) from push-\w+ on demo/files "
                     r"in [\d.]+ s \([\d.]+ MB/s\)", text), text


@pytest.mark.timeout(90)
def test_ctrl_c_stops_the_bars_and_a_resumed_pull_counts_only_what_it_moved(
        tmp_path: Path) -> None:
    size = 24 << 20
    source = data(tmp_path / "large.bin", size)
    out = tmp_path / "out"
    with sharing(tmp_path, source) as (_owner, [(rid, where)]):
        pull = ("pull", rid, "--from", where, "--out", str(out), "--chunk-size", "16KiB")
        # Small chunks, many progress reports: some come after the command began to end.
        first = Terminal(*pull, "--bwlimit", "12MB/s", columns=COLUMNS)
        try:
            first.read_until(lambda text: "%|" in text, 20)
            wait_until(lambda: next((p for p in out.glob(".zfs-partial/pull-*")
                                     if p.stat().st_size > (1 << 20)), None), 20)
            first.interrupt()
            assert first.finish() == 130, first.output
        finally:
            first.close()
        after = first.output.split("interrupted: run the same command again to resume")
        assert len(after) == 2, first.output
        assert "%|" not in after[1] and "B/s" not in after[1], after[1]
        kept = next(out.glob(".zfs-partial/pull-*")).stat().st_size
        assert 0 < kept < size

        resumed = Terminal(*pull, "--bwlimit", "40MB/s", columns=COLUMNS)
        try:
            assert resumed.finish() == 0, resumed.output
        finally:
            resumed.close()
    assert file_digest(out / "large.bin") == file_digest(source)
    shown = rates(bar_lines(resumed.output))
    assert shown and max(shown) < 200e6, shown    # 5x the cap: never resumed bytes over no time
    summary = next(line for line in screen_lines(resumed.output)
                   if line.startswith("downloaded"))
    assert f"({format_size(size)}; {format_size(kept)} of it were here already)" in summary
    found = re.search(r"in ([\d.]+) s \(([\d.]+) MB/s\)", summary)
    assert found, summary
    seconds, rate = found.groups()
    assert float(rate) == pytest.approx((size - kept) / float(seconds) / 1e6, rel=0.05,
                                        abs=0.2)

