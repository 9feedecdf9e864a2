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
@pytest.mark.timeout(150)
def test_a_small_run_pushes_and_pulls_both_ways_and_leaves_no_namespace(
        capsys: pytest.CaptureFixture[str]) -> None:
    reason = scale.unavailable()
    if reason is not None:
        pytest.skip(reason)
    before = _namespaces()
    assert scale.main(["--mode", "both", "--size", "2MiB", "--targets", "1,2",
                       "--rate", "400"]) == 0
    lines = capsys.readouterr().out.splitlines()
    ways = [line.split()[:3] for line in lines[2:10]]
    assert lines[10].startswith("peak RSS over the run: owner")
    assert ways == [[kind, n, way] for kind in ("push", "pull") for n in ("1", "2")
                    for way in ("swarm", "star")]
    assert _namespaces() <= before


def test_the_table_gives_each_run_against_the_bound_and_the_star() -> None:
    rows = [scale.Row(8, "swarm", 3.0, 1.05, 0.5, 0.6),
            scale.Row(8, "star", 24.0, 8.4, 0.2, 0.3),
            scale.Row(8, "swarm", 2.0, 1.8, 0.5, 0.6, "pull"),
            scale.Row(8, "star", 20.0, 8.2, 0.2, 0.3, "pull")]
    table = scale.render(rows, 64 << 20, 300).splitlines()
    assert table[0].startswith("push and pull of 64 MiB")
    assert "bound (size / link rate) 1.79 s" in table[0]
    assert table[1].split()[:3] == ["kind", "N", "way"]
    push, push_star, pull, pull_star = table[2:]
    assert push.split()[:6] == ["push", "8", "swarm", "3.00", "1.68", "0.12"]
    assert "bound: NOT met" in push and "copies <= 1.5: met" in push
    assert pull.split()[:6] == ["pull", "8", "swarm", "2.00", "1.12", "0.10"]
    assert "bound: met" in pull and "copies <= 1.5: NOT met" in pull
    assert "met" not in push_star + pull_star
