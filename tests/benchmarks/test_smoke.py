"""The benchmark harness runs every scenario end to end at a tiny size.

Speed is measured by ``python -m benchmarks``, never asserted here: these tests
check that each scenario's parties start, talk, finish and fill the table with the
expected rows and positive numbers.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.cli import main
from benchmarks.curve import make_keys, site_options
from benchmarks.data import make_file, parse_size
from benchmarks.procs import BenchError, Parties
from benchmarks.report import Report, RowSpec, Target, build_rows


def _run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    out = tmp_path / "table.json"
    status = main([*argv, "--dir", str(tmp_path), "--json", str(out), "--timeout", "30"])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert argv[0] in printed.out  # the table's title names the scenario
    table: dict[str, Any] = json.loads(out.read_text())
    return table


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:
        return False
    return True


def _check_rows(table: dict[str, Any], labels: list[str], ours: bool) -> None:
    assert [row["label"] for row in table["rows"]] == labels
    for row in table["rows"]:
        assert row["base"] is not None and row["base"] > 0, row
        if ours:
            assert row["ours"] is not None and row["ours"] > 0, row
            assert row["ratio"] is not None and row["ratio"] > 0, row
        else:
            assert row["ours"] is None, row
    if not ours:
        assert any(note.startswith("ours: not available") for note in table["notes"])


def _transfer_labels(party: str, source: str, counts: tuple[int, ...]) -> list[str]:
    labels = []
    for n in counts:
        head = f"{n} {party}{'s' if n > 1 else ''}:"
        if n == 1:
            labels.append(f"{head} MB/s")
        else:
            labels += [f"{head} MB/s r{i}" for i in range(n)] + [f"{head} aggregate MB/s"]
        labels.append(f"{head} wall time")
        labels += [f"{head} peak RSS {p}" for p in [source, *(f"r{i}" for i in range(n))]]
    return labels


@pytest.mark.timeout(90)
def test_messages_scenario_fills_every_row(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    table = _run(tmp_path, capsys, "messages", "--messages", "300", "--asks", "40",
                 "--size", "8MiB")
    _check_rows(table, [
        "tell: small messages per second", "ask round trip p50", "ask round trip p99",
        "1 MiB payload throughput", "1 MiB payloads, windowed, each acked",
        "peak RSS client (sender)", "peak RSS server (receiver)",
    ], ours=_importable("actors"))


TRANSFERS = [("push", "target", "sender"), ("pull", "recipient", "owner")]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("scenario", "party", "source"), TRANSFERS)
def test_transfer_scenario_fills_every_row(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           scenario: str, party: str, source: str) -> None:
    table = _run(tmp_path, capsys, scenario, "--size", "3MiB", "--targets", "1,2",
                 "--chunk-size", "256KiB")
    _check_rows(table, _transfer_labels(party, source, (1, 2)),
                ours=_importable(f"zfs.{scenario}"))


@pytest.mark.timeout(90)
def test_as_user_run_can_rest_before_go_and_says_so(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """--as-user --idle: plain processes, a rest before every go, recorded in the table."""
    table = _run(tmp_path, capsys, "push", "--as-user", "--idle", "0.2", "--size", "3MiB",
                 "--targets", "1", "--chunk-size", "256KiB")
    _check_rows(table, _transfer_labels("target", "sender", (1,)), ours=_importable("zfs"))
    assert table["params"]["as_user"] is True and table["params"]["idle_s"] == 0.2
    assert any("rests 0.2 s before go (--idle)" in note for note in table["notes"])
    assert main(["push", "--as-user", "--idle", "-1"]) == 2
    assert main(["push", "--idle", "1"]) == 2  # tuned runs recycle the page cache instead


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("scenario", "party", "source"), TRANSFERS)
def test_transfer_with_curve_compares_secure_and_plain_zfs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], scenario: str, party: str,
        source: str) -> None:
    """A --curve table: zfs with CURVE against zfs plain, every row filled, 0.45x targets."""
    if not _importable(f"zfs.{scenario}"):
        pytest.skip(f"zfs.{scenario} is not available")
    table = _run(tmp_path, capsys, scenario, "--curve", "--size", "3MiB", "--targets", "1",
                 "--chunk-size", "256KiB")
    ours = f"zfs {scenario}"
    assert (table["ours"], table["baseline"]) == (f"{ours} CURVE", f"{ours} plain")
    assert table["params"]["curve"] is True
    _check_rows(table, _transfer_labels(party, source, (1,)), ours=True)
    assert table["rows"][0]["target"] == ">= 0.45x"
    assert not any(note.startswith("raw TCP:") for note in table["notes"])


def test_curve_parties_trust_every_other_site_of_the_run(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys", ["sender", "r0", "r1"])
    assert site_options({"name": "r0"}, "r0") == {}  # no keys: plain links, as before --curve
    curve = site_options({"keys": str(keys)}, "r0")["curve"]
    assert (curve.site_name, curve.peers()) == ("r0", ["r1", "sender"])
    assert main(["messages", "--curve"]) == 2


def test_a_failing_party_is_reported_not_hung(tmp_path: Path) -> None:
    with Parties(tmp_path) as parties:
        child = parties.start("benchmarks.worker:no_such_role", {}, "broken")
        with pytest.raises(BenchError, match="broken"):
            child.expect(timeout=30)


def test_sizes_parse_in_decimal_and_binary_units() -> None:
    assert parse_size("1GiB") == 1 << 30
    assert parse_size("8 GiB") == 8 << 30
    assert parse_size("10MB") == 10_000_000
    assert parse_size("4096") == 4096
    with pytest.raises(ValueError):
        parse_size("lots")


def test_generated_file_has_the_size_asked_and_varies(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    make_file(path, 3 * (1 << 20) + 7)
    data = path.read_bytes()
    assert len(data) == 3 * (1 << 20) + 7
    assert data[: 1 << 20] != data[1 << 20: 2 << 20]


def test_rows_take_medians_of_rates_max_of_memory_and_judge_targets() -> None:
    specs = [RowSpec("rate", "rate", "MB/s", target=Target("ratio", ">=", 0.6)),
             RowSpec("rss", "rss", "MiB", fold="max", target=Target("value", "<=", 64, "MiB"))]
    ours = [{"rate": 50.0, "rss": 60.0}, {"rate": 70.0, "rss": 70.0}, {"rate": 90.0, "rss": 10.0}]
    base = [{"rate": 100.0, "rss": 5.0}] * 3
    rate, rss = build_rows(specs, ours, base)
    assert (rate.ours, rate.ratio, rate.verdict) == (70.0, 0.7, "PASS")
    assert (rss.ours, rss.verdict, rss.target) == (70.0, "MISS", "<= 64 MiB")
    text = Report("x", "title", "ours", "base", rows=[rate, rss]).render()
    assert "0.70x" in text and "MISS" in text


def test_rate_ratio_is_the_median_of_back_to_back_pairs() -> None:
    """A slow spell hitting one run's both sides cancels out of the ratio."""
    specs = [RowSpec("rate", "rate", "MB/s", target=Target("ratio", ">=", 0.6))]
    ours = [{"rate": 40.0}, {"rate": 90.0}, {"rate": 100.0}]
    base = [{"rate": 50.0}, {"rate": 180.0}, {"rate": 200.0}]  # run 1: both slow
    (rate,) = build_rows(specs, ours, base)
    assert rate.ours == 90.0 and rate.base == 180.0
    assert rate.ratio == 0.5  # pairs: 0.8, 0.5, 0.5; the ratio of medians would also be 0.5
    ours[1]["rate"] = 150.0  # pairs: 0.8, 0.83, 0.5 -> 0.8; medians 100/180 = 0.56
    (rate,) = build_rows(specs, ours, base)
    assert round(rate.ratio, 2) == 0.8 and rate.verdict == "PASS"
    assert rate.spread is not None
    assert (round(rate.spread[0], 2), round(rate.spread[1], 2)) == (0.5, 0.83)
    assert "0.50-0.83x" in Report("x", "title", "ours", "base", rows=[rate]).render()


@pytest.mark.timeout(180)
def test_tree_scenario_fills_every_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = _run(tmp_path, capsys, "tree", "--size", "1MiB", "--files", "20",
                 "--chunk-size", "256KiB")
    labels = [row["label"] for row in table["rows"]]
    assert "push (c) 20 files of 4 KiB: files/s" in labels
    assert "pull: rate of (b) / rate of (a)" in labels
    for row in table["rows"]:
        assert row["base"] is not None and row["base"] > 0, row
        assert row["ours"] is not None and row["ours"] > 0, row
