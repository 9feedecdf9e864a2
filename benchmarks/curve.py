"""``--curve``: the same zfs transfer with CurveZMQ off and on, in the same run (issue 5).

With ``python -m benchmarks push --curve`` (or ``pull --curve``) the table compares
zfs with itself: the baseline column is the transfer over plain links, ours is the
same transfer, same file, same processes layout, with every site speaking CURVE.
The ratio is the price of security, which is what issue 5 bounds (>= 0.45x); raw
TCP is left out here because it answers another question (run without ``--curve``).

Keypairs for every site of the run are written at run time into one folder of the
run's temp dir; that folder doubles as every site's allow-list
(:meth:`actors.security.Curve.from_dirs` drops the site's own key from it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks.data import format_size, make_file, workdir
from benchmarks.options import Options, progress, unavailable
from benchmarks.procs import BenchError
from benchmarks.report import Report, RowSpec, Samples, Target, build_rows
from benchmarks.transfer import Scenario, against_raw, row_specs

#: Issue 5: with CURVE, at least this share of our own plain throughput.
TARGET = Target("ratio", ">=", 0.45)


def run(options: Options, scenario: Scenario, missing: str | None) -> Report:
    """Measure ``scenario`` with CURVE on vs off if ``options.curve``, else against raw TCP.

    Raises:
        BenchError: ``--curve`` was asked but our side (or actors.security) is not available.
    """
    if options.curve:
        return compare(options, scenario, missing)
    return against_raw(options, scenario, missing)


def compare(options: Options, scenario: Scenario, missing: str | None) -> Report:
    """Measure ``scenario`` plain then with CURVE for every width and run; return the table.

    Raises:
        BenchError: our side (or actors.security) is not available: with ``--curve``
            there would be nothing to compare.
    """
    missing = missing or unavailable("actors.security", "Curve", "new_keypair")
    if missing is not None:
        raise BenchError(f"--curve compares {scenario.ours} with itself, but {missing}")
    report = Report(scenario.name, f"{scenario.title}; CURVE on (ours) vs off (baseline)",
                    f"{scenario.ours} CURVE", f"{scenario.ours} plain",
                    params={**scenario.params, "curve": True})
    specs = [_with_curve_target(spec) for n in options.targets
             for spec in row_specs(n, scenario.source, scenario.party)]
    with workdir(options.dir) as work:
        source = work / "source.bin"
        progress(f"writing a {format_size(options.size)} test file in {work}")
        make_file(source, options.size)
        names = [scenario.source, *(f"r{i}" for i in range(max(options.targets)))]
        keys = make_keys(work / "keys", names)
        for run_no in range(1, options.runs + 1):
            plain: Samples = {}
            secure: Samples = {}
            for n in options.targets:
                step = f"run {run_no}/{options.runs}, {n} {scenario.party}(s): {scenario.ours}"
                progress(f"{step}, plain links")
                plain.update(scenario.measure(work, source, n, options, None))
                progress(f"{step}, CURVE")
                secure.update(scenario.measure(work, source, n, options, keys))
            report.base_runs.append(plain)
            report.ours_runs.append(secure)
    report.rows = build_rows(specs, report.ours_runs, report.base_runs)
    report.notes = [*without_raw_notes(scenario.notes), *curve_notes(scenario)]
    return report


def make_keys(folder: Path, names: Iterable[str]) -> Path:
    """Write a fresh CURVE keypair for every site in ``names`` into ``folder``; return it."""
    from actors.security import new_keypair  # only --curve needs it

    for name in names:
        new_keypair(name, folder)
    return folder


def site_options(params: dict[str, Any], name: str) -> dict[str, Any]:
    """The ``actors.Site`` keywords for site ``name`` of a party: ``curve=`` when keyed.

    A party's params carry ``"keys"`` (the keys folder) only in a CURVE measurement;
    without it the site gets exactly the options it had before ``--curve`` existed.
    """
    keys = params.get("keys")
    if not keys:
        return {}
    from actors.security import Curve  # only --curve needs it

    return {"curve": Curve.from_dirs(name, keys)}


def _with_curve_target(spec: RowSpec) -> RowSpec:
    """Rate rows are judged against plain zfs (>= 0.45x), not raw TCP's targets."""
    if spec.target is None or spec.target.of != "ratio":
        return spec
    return dataclasses.replace(spec, target=TARGET)


def curve_notes(scenario: Scenario) -> list[str]:
    """What a reader of a ``--curve`` table must know to judge it."""
    return [
        f"--curve: in every run and width, {scenario.ours} is measured twice, the same way "
        "(same file, one process per site, the page cache prepared the same): first over "
        "plain links (baseline column), then with CurveZMQ on every link (ours column). "
        "Keypairs for every site are generated in the run's temp folder, which is also every "
        "site's allow-list; the transfer is started with secure=True, so it would refuse a "
        "link that is not encrypted.",
        f"--curve: rate targets are {TARGET.text()} of our own plain throughput (issue 5; raw "
        "pyzmq with CURVE moved about 0.5x of itself without it); peak RSS keeps its "
        "<= 64 MiB target. No raw TCP column in this mode: run without --curve for it.",
    ]


def without_raw_notes(notes: list[str]) -> list[str]:
    """Drop the raw TCP baseline's description (there is none in a ``--curve`` table)."""
    return [note.replace("Baseline RSS in the raw column", "Plain links' RSS in the baseline column")
            for note in notes if not note.startswith("raw TCP:")]
