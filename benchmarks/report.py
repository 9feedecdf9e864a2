"""The results table: our figure, the baseline's, the ratio, the issue's target, a verdict.

A scenario collects one flat dict of numbers per run for our side and one for the
baseline, then describes its rows; :func:`build_rows` folds the runs (median for
rates and times, max for peak memory) and :class:`Report` prints the table and dumps
it as JSON. PASS/MISS compares a measurement with a target: it is not a test.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Samples = dict[str, float]
Fold = Literal["median", "max"]


@dataclass(frozen=True, slots=True)
class Target:
    """An issue's target: a bound on ours/baseline (``ratio``) or on our figure (``value``)."""

    of: Literal["ratio", "value"]
    op: Literal[">=", "<="]
    bound: float
    unit: str = ""

    def text(self) -> str:
        """Say the target the way the issue does (``>= 0.6x``, ``<= 64 MiB``)."""
        if self.of == "ratio":
            return f"{self.op} {self.bound:g}x"
        return f"{self.op} {self.bound:g} {self.unit}".rstrip()

    def verdict(self, ours: float | None, ratio: float | None) -> str:
        """PASS or MISS, or "" when the figure it needs is missing."""
        figure = ratio if self.of == "ratio" else ours
        if figure is None:
            return ""
        met = figure >= self.bound if self.op == ">=" else figure <= self.bound
        return "PASS" if met else "MISS"


@dataclass(frozen=True, slots=True)
class RowSpec:
    """How to make one row from the runs' samples."""

    key: str
    label: str
    unit: str
    fold: Fold = "median"
    target: Target | None = None


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table."""

    label: str
    unit: str
    ours: float | None
    base: float | None
    ratio: float | None
    target: str
    verdict: str
    #: The lowest and highest per-run ratio, for rows whose ratio pairs runs: how
    #: far one run can stray on this machine.
    spread: tuple[float, float] | None = None


def fold(runs: list[Samples], key: str, how: Fold) -> float | None:
    """Fold one figure over the runs that have it (None when none has)."""
    values = [run[key] for run in runs if key in run]
    if not values:
        return None
    return max(values) if how == "max" else statistics.median(values)


def paired_ratios(ours: list[Samples], base: list[Samples], key: str) -> list[float]:
    """Ours/baseline for each run that measured both, one right after the other.

    This machine has slow spells (a shared host, disk writeback) that last seconds and
    hit whichever side runs then; a ratio within one pair of back-to-back runs cancels
    them, where the ratio of two medians taken from different runs does not. Their
    median is the row's ratio.
    """
    return [mine[key] / theirs[key] for mine, theirs in zip(ours, base)
            if key in mine and theirs.get(key)]


def build_rows(specs: list[RowSpec], ours: list[Samples], base: list[Samples]) -> list[Row]:
    """Make the table's rows from the specs and both sides' per-run samples.

    The ratio of a median figure is the median of per-run ratios (:func:`paired_ratios`);
    of a peak figure, peak over peak.
    """
    rows = []
    for spec in specs:
        mine = fold(ours, spec.key, spec.fold)
        theirs = fold(base, spec.key, spec.fold)
        spread = None
        if spec.fold == "median" and len(ours) == len(base):
            ratios = paired_ratios(ours, base, spec.key)
            ratio = statistics.median(ratios) if ratios else None
            spread = (min(ratios), max(ratios)) if len(ratios) > 1 else None
        else:
            ratio = mine / theirs if mine is not None and theirs else None
        target = spec.target.text() if spec.target else ""
        verdict = spec.target.verdict(mine, ratio) if spec.target else ""
        rows.append(Row(spec.label, spec.unit, mine, theirs, ratio, target, verdict, spread))
    return rows


@dataclass
class Report:
    """One scenario's table, with what a reader needs to judge it."""

    scenario: str
    title: str
    ours_name: str
    base_name: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    ours_runs: list[Samples] = field(default_factory=list)
    base_runs: list[Samples] = field(default_factory=list)

    def render(self) -> str:
        """Return the table as aligned plain text, title first and notes after."""
        header = ["metric", "unit", self.ours_name, self.base_name, "ratio", "runs' ratios",
                  "target", "verdict"]
        body = [
            [row.label, row.unit, _number(row.ours), _number(row.base),
             _number(row.ratio, ratio=True), _spread(row.spread), row.target, row.verdict]
            for row in self.rows
        ]
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
        lines = [self.title, ""]
        for n, line in enumerate([header, *body]):
            cells = [
                cell.ljust(widths[i]) if i in (0, 1, 6, 7) else cell.rjust(widths[i])
                for i, cell in enumerate(line)
            ]
            lines.append("  ".join(cells).rstrip())
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines.append("")
        lines.extend(f"* {note}" for note in self.notes)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Return everything in the table, plus every run's raw samples."""
        return {
            "scenario": self.scenario, "title": self.title,
            "ours": self.ours_name, "baseline": self.base_name,
            "params": self.params, "rows": [asdict(row) for row in self.rows],
            "notes": self.notes, "ours_runs": self.ours_runs, "base_runs": self.base_runs,
        }

    def dump(self, path: Path) -> None:
        """Write :meth:`to_json` to ``path``."""
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")


def _spread(spread: tuple[float, float] | None) -> str:
    return f"{spread[0]:.2f}-{spread[1]:.2f}x" if spread is not None else ""


def _number(value: float | None, ratio: bool = False) -> str:
    if value is None:
        return "n/a"
    if ratio:
        return f"{value:.2f}x"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
