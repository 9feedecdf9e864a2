"""What a benchmark run was asked to do, parsed once by the CLI."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Options:
    """The command line's choices (sizes in bytes, times in seconds)."""

    size: int = 1 << 30
    runs: int = 1
    targets: tuple[int, ...] = (1, 4)
    chunk_size: int = 1 << 20
    window: int = 8
    messages: int = 100_000
    asks: int = 2000
    dir: str | None = None
    timeout: float = 120.0
    curve: bool = False  # push/pull: zfs with CURVE vs zfs plain instead of zfs vs raw TCP
    files: int = 10_000  # tree: small files in folder (c)
    as_user: bool = False  # parties as a user's program runs: no tune_malloc, no page recycling
    idle: float = 0.0  # seconds the machine rests after the page-cache flush, before go

    def incoming(self, nbytes: int) -> int:
        """Bytes of page cache to recycle before a run (none when run as a user would)."""
        return 0 if self.as_user else nbytes

    def transfer_timeout(self, parties: int = 1) -> float:
        """Allow ``timeout`` plus 20 MB/s for every byte a run moves (a slow run still ends)."""
        return self.timeout + parties * self.size / 20e6


def parse_counts(text: str) -> tuple[int, ...]:
    """Parse a comma list of whole numbers >= 1 (``"1,4"``), each kept once, in order.

    Raises:
        argparse.ArgumentTypeError: a part is not a whole number, or is below 1.
    """
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of whole numbers: {text!r}") from None
    if min(counts) < 1:
        raise argparse.ArgumentTypeError("numbers must be 1 or more")
    return tuple(dict.fromkeys(counts))


def unavailable(module: str, *names: str) -> str | None:
    """Say why our side cannot run (``module`` or a name in it missing), or None if it can."""
    try:
        loaded = importlib.import_module(module)
    except Exception as err:  # any import failure means: not written yet, or broken
        return f"{module} cannot be imported ({type(err).__name__}: {err})"
    missing = [name for name in names if not hasattr(loaded, name)]
    if missing:
        return f"{module} has no {', '.join(missing)}"
    return None


def machine() -> str:
    """Describe the machine a table was measured on."""
    return f"{os.cpu_count()} cores, {os.uname().sysname} {os.uname().release}"


def progress(text: str) -> None:
    """Say on stderr what is being measured now (a long run should not look hung)."""
    print(f"... {text}", file=sys.stderr, flush=True)
