"""The scale benchmark runs small, end to end, and cleans up after itself.

Speed is what ``python -m benchmarks scale`` reports; nothing here asserts it.
"""

from __future__ import annotations

import os

import pytest

from benchmarks import scale
from tests.support import netns


def _namespaces() -> set[str]:
    """Namespaces this process made (named zfstest-<pid>-...): another run of the suite
    on the machine makes its own meanwhile."""
    ours = f"{netns.PREFIX}-{os.getpid()}-"
    return {line.split()[0] for line in netns.ip("netns", "list").splitlines()
            if line.startswith(ours)}


@pytest.mark.netns
@pytest.mark.timeout(90)
def test_a_small_run_pushes_both_ways_and_leaves_no_namespace(
        capsys: pytest.CaptureFixture[str]) -> None:
    reason = scale.unavailable()
    if reason is not None:
        pytest.skip(reason)
    before = _namespaces()
    assert scale.main(["--size", "2MiB", "--targets", "1,2", "--rate", "400"]) == 0
    lines = capsys.readouterr().out.splitlines()
    ways = [line.split()[:2] for line in lines[2:6]]
    assert lines[6].startswith("peak RSS over the run: owner")
    assert ways == [["1", "swarm"], ["1", "star"], ["2", "swarm"], ["2", "star"]]
    assert _namespaces() <= before


def test_the_table_gives_each_push_against_the_bound_and_the_star() -> None:
    rows = [scale.Row(8, "swarm", 3.0, 1.05, 0.5, 0.6),
            scale.Row(8, "star", 24.0, 8.4, 0.2, 0.3)]
    table = scale.render(rows, 64 << 20, 300)
    assert "bound (size / link rate) 1.79 s" in table
    swarm = table.splitlines()[2].split()
    assert swarm[:5] == ["8", "swarm", "3.00", "1.68", "0.12"] and "NOT met" in table
