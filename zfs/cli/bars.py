"""Progress bars for the command line, drawn from the library's progress callbacks.

The library only reports progress (``Progress(name, bytes_done, total, peer)`` from
the push sender's or the download's actor thread); drawing is the edge's business.
One bar per peer: a push to three sites shows three lines, each with bytes, rate and
time left. No bars at all with ``--quiet`` or when stderr is not a terminal, so logs
and pipes stay clean.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, NamedTuple, Optional, Protocol, TextIO

from tqdm import tqdm


class Report(NamedTuple):
    """A progress report of our own (the library's carry the same fields)."""

    name: str
    bytes_done: int
    total: Optional[int]
    peer: str


class ProgressLike(Protocol):
    """What both ``zfs.push.Progress`` and ``zfs.pull.Progress`` carry."""

    @property
    def name(self) -> str: ...

    @property
    def bytes_done(self) -> int: ...

    @property
    def total(self) -> Optional[int]: ...

    @property
    def peer(self) -> str: ...


def wanted(quiet: bool, stream: TextIO | None = None) -> bool:
    """Whether to draw bars: not asked to be quiet and writing to a terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return not quiet and bool(isatty and isatty())


def _width(stream: TextIO) -> dict[str, Any]:
    """Follow the terminal's size; one that reports none (0 x 0, some ptys) gets 80 x 24.

    tqdm draws nothing at all into a terminal of width 0 or height 0.
    """
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError):
        size = os.terminal_size((0, 0))
    if size.columns > 0 and size.lines > 0:
        return {"dynamic_ncols": True}
    return {"ncols": size.columns or 80, "nrows": size.lines or 24}


class Bars:
    """One bar per peer, fed by :meth:`update` (pass it as ``on_progress``).

    Args:
        enabled: draw anything at all (see :func:`wanted`).
        label: what moves, e.g. ``"push big.iso ->"``; each bar adds its peer. A
            ``{name}`` in it becomes the file name of the bar's first report.
        peers: peers to show from the start, in this order (others appear when heard of).
        total: the size to show before the first report, if known.
    """

    def __init__(self, enabled: bool, label: str, peers: tuple[str, ...] = (),
                 total: int | None = None, stream: TextIO | None = None) -> None:
        self._enabled = enabled
        self._label = label
        self._stream = sys.stderr if stream is None else stream
        self._bars: dict[str, Any] = {}
        self._lock = threading.Lock()
        for peer in peers:
            self._bar(peer, total)

    def _bar(self, peer: str, total: int | None, name: str = "") -> Any:
        bar = self._bars.get(peer)
        if bar is None and self._enabled:
            label = self._label.replace("{name}", name)
            bar = tqdm(total=total, desc=f"{label} {peer}", unit="B", unit_scale=True,
                       unit_divisor=1024, position=len(self._bars), leave=True,
                       file=self._stream, miniters=1, **_width(self._stream))
            self._bars[peer] = bar
        return bar

    def update(self, progress: ProgressLike) -> None:
        """Move the bar of ``progress.peer`` to ``progress.bytes_done`` (any thread)."""
        if not self._enabled:
            return
        with self._lock:
            bar = self._bar(progress.peer, progress.total, progress.name)
            if bar.total != progress.total:
                bar.total = progress.total
            bar.update(max(0, progress.bytes_done - bar.n))

    def finish(self, peer: str, size: int) -> None:
        """Show ``peer`` as complete (the last report may have been skipped by rate limits)."""
        self.update(Report("", size, size, peer))

    def close(self) -> None:
        """Leave the bars on screen as they are and release the terminal."""
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
