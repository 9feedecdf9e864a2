"""The set of chunks a pull with peers holds, kept beside its temporary file."""

from __future__ import annotations

from pathlib import Path

from zfs.swarm import held


def test_a_saved_set_loads_back_exactly(tmp_path: Path) -> None:
    temp = str(tmp_path / "pull-swarm-key")
    chunks = [0, 3, 7, 8, 20]
    held.save(temp, 21, sum(1 << i for i in chunks))
    assert held.load(temp, 21) == chunks
    assert not (tmp_path / "pull-swarm-key.held.new").exists()   # written, then renamed


def test_a_missing_or_foreign_set_means_nothing_is_held(tmp_path: Path) -> None:
    temp = str(tmp_path / "p")
    assert held.load(temp, 10) == []                       # none saved
    held.save(temp, 10, 0b11)
    assert held.load(temp, 100) == []                      # saved for another size
    Path(held.held_path(temp)).write_bytes(b"\xff\xff")    # bits past the file's 10 chunks
    assert held.load(temp, 10) == []


def test_remove_takes_the_set_and_a_half_written_one(tmp_path: Path) -> None:
    temp = str(tmp_path / "p")
    held.save(temp, 8, 1)
    Path(held.held_path(temp) + ".new").write_bytes(b"x")
    held.remove(temp)
    held.remove(temp)                                      # twice is harmless
    assert list(tmp_path.iterdir()) == []
