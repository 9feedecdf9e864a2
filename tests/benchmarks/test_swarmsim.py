"""The swarm simulation runs small, end to end, and every surviving recipient gets the file.

Speed is what ``python -m benchmarks.swarmsim`` reports; nothing here asserts it.
"""

from __future__ import annotations

import pytest

from benchmarks import swarmsim as ss
from benchmarks.swarmsim_model import Population

FAULTY = Population(slow=0.05, dying=0.05, bad=0.05, nat=0.1)


@pytest.mark.parametrize("fanout", [1, 2, 3])
def test_a_simulated_push_commits_the_file_at_every_target(fanout: int) -> None:
    result = ss.run_push(50, Population(), 3, fanout, chunks=24, chunk_size=64 << 10)
    assert result.ok and result.survivors == 50
    assert 0.99 < result.owner_copies < 1.01          # the sender sent each chunk once


def test_a_simulated_push_whose_relay_dies_aborts_everywhere_naming_it() -> None:
    result = ss.run_push_abort(50, Population(), 3, 2, chunks=24, chunk_size=64 << 10)
    assert result.ok, result.note                     # culprit named, no partial file left


@pytest.mark.parametrize("pop", [Population(), FAULTY], ids=["clean", "faulty"])
def test_a_simulated_pull_gives_every_survivor_the_exact_file(pop: Population) -> None:
    result = ss.run_pull(50, pop, 3, chunks=24, chunk_size=64 << 10)
    assert result.ok, result.note
    assert result.survivors >= 45


def test_the_command_prints_a_table_and_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    status = ss.main(["--recipients", "12", "--chunks", "16", "--chunk-kib", "64",
                      "--fanout", "2", "--faults"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert out.count("push") >= 2 and out.count("pull") >= 2
