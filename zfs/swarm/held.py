"""Which chunks a download with peers holds, kept beside its temporary file for a resume.

Chunks of a pull with peers arrive in any order, so the temporary file's size says
nothing about what it holds. A bit set (one bit per chunk) is written beside it, in
the folder of files in progress, named after it with ``.held``: at most once a second
while the download runs, and when it stops. It only ever lists chunks that were
written (and checked) before it was saved; the whole-file digest at the end checks
everything once more. A set that does not fit the file is ignored (start over).
"""

from __future__ import annotations

import os
SUFFIX = ".held"


def held_path(temp_path: str) -> str:
    return temp_path + SUFFIX


def load(temp_path: str, total: int) -> list[int]:
    """The chunks a previous run saved as held (none if the set is missing or wrong)."""
    try:
        with open(held_path(temp_path), "rb") as f:
            bits = f.read((total + 7) // 8 + 1)
    except OSError:
        return []
    if len(bits) != (total + 7) // 8:
        return []
    chunks = [byte * 8 + bit for byte, value in enumerate(bits) if value
              for bit in range(8) if value >> bit & 1]
    return [] if chunks and chunks[-1] >= total else chunks


def save(temp_path: str, total: int, held: int) -> None:
    """Write the set ``held`` (a bit per chunk) atomically beside the temporary file."""
    path, temp = held_path(temp_path), held_path(temp_path) + ".new"
    with open(temp, "wb") as f:
        f.write(held.to_bytes((total + 7) // 8, "little"))
    os.replace(temp, path)


def remove(temp_path: str) -> None:
    for path in (held_path(temp_path), held_path(temp_path) + ".new"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

