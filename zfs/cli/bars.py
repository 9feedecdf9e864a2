"""Progress bars for the command line, drawn from the library's progress callbacks.

The library only reports progress (``Progress(name, bytes_done, total, peer)`` from
the push sender's or the download's actor thread); drawing is the edge's business.
One bar per peer: a push to three sites shows three lines, each with bytes, rate and
time left, in decimal units (kB, MB, GB; MB/s) like every summary the command prints.
A long file name is shortened in the middle so that the numbers always fit the line.
No bars at all with ``--quiet`` or when stderr is not a terminal, so logs and pipes
stay clean; none either once :meth:`Bars.close` ran, whatever reports come late.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, NamedTuple, Optional, Protocol, TextIO

from tqdm import tqdm

#: Columns the numbers of a bar take at most, with the narrowest bar worth drawing:
#: " 100%|" + bar (5) + "| " + "1.00GB/1.00GB" + " 1.00GB/s" + " 1:00:00".
NUMBERS_WIDTH = 45
_KNOWN = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}B/{total_fmt}B {rate_fmt} {remaining}"
_UNKNOWN = "{desc} {n_fmt}B {rate_fmt} {elapsed}"


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


def _size(stream: TextIO) -> os.terminal_size:
    try:
        return os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return os.terminal_size((0, 0))


def _width(stream: TextIO) -> dict[str, Any]:
    """Follow the terminal's size; one that reports none (0 x 0, some ptys) gets 80 x 24.

    tqdm draws nothing at all into a terminal of width 0 or height 0.
    """
    size = _size(stream)
    if size.columns > 0 and size.lines > 0:
        return {"dynamic_ncols": True}
    return {"ncols": size.columns or 80, "nrows": size.lines or 24}


def shorten(text: str, width: int, mark: str = "…") -> str:
    """``text`` in at most ``width`` characters, cut in the middle where it is longer."""
    if len(text) <= width:
        return text
    if width <= len(mark):
        return text[:width]
    keep = width - len(mark)
    head = (keep + 1) // 2
    return text[:head] + mark + text[len(text) - (keep - head):]


def label(template: str, name: str, peer: str, columns: int, mark: str = "…") -> str:
    """The text before a bar: ``template`` with ``{name}``, then the peer, fitted to the line.

    The numbers keep their :data:`NUMBERS_WIDTH` columns; the file name gives way first,
    then the peer name (never below a few characters each).
    """
    budget = max(16, columns - NUMBERS_WIDTH)
    fixed = len(template.replace("{name}", "")) + 1
    peer = shorten(peer, max(6, min(len(peer), budget - fixed - 6)), mark)
    room = max(5, budget - fixed - len(peer))
    return f"{template.replace('{name}', shorten(name, room, mark))} {peer}"


class Bars:
    """One bar per peer, fed by :meth:`update` (pass it as ``on_progress``).

    Args:
        enabled: draw anything at all (see :func:`wanted`).
        label: what moves, e.g. ``"push big.iso ->"``; each bar adds its peer. A
            ``{name}`` in it becomes the file name of the bar's first report.
        peers: peers to show from the start, in this order (others appear when heard of).
        total: the size to show before the first report, if known.
        name: the file name, for a ``{name}`` in ``label`` before any report.
    """

    def __init__(self, enabled: bool, label: str, peers: tuple[str, ...] = (),
                 total: int | None = None, stream: TextIO | None = None,
                 name: str = "") -> None:
        self._enabled = enabled
        self._label = label
        self._stream = sys.stderr if stream is None else stream
        self._bars: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._closed = False
        encoding = (getattr(self._stream, "encoding", None) or "").lower()
        self._mark = "…" if encoding.startswith("utf") else "~"
        for peer in peers:
            self._bar(peer, total, name, 0)

    def _bar(self, peer: str, total: int | None, name: str, initial: int) -> Any:
        bar = self._bars.get(peer)
        if bar is None and self._enabled:
            columns = _size(self._stream).columns or 80
            bar = tqdm(total=total, initial=initial,
                       desc=label(self._label, name, peer, columns, self._mark),
                       unit="B", unit_scale=True, unit_divisor=1000,
                       bar_format=_KNOWN if total else _UNKNOWN, position=len(self._bars),
                       leave=True, file=self._stream, miniters=1, **_width(self._stream))
            self._bars[peer] = bar
        return bar

    def update(self, progress: ProgressLike) -> None:
        """Move the bar of ``progress.peer`` to ``progress.bytes_done`` (any thread).

        A bar first heard of here starts at that report: what it reports then (a
        resumed download's bytes already on disk, say) is not counted in its rate.
        """
        if not self._enabled:
            return
        with self._lock:
            if self._closed:
                return
            bar = self._bar(progress.peer, progress.total, progress.name, progress.bytes_done)
            if bar.total != progress.total and progress.total:
                bar.total = progress.total
            bar.update(max(0, progress.bytes_done - bar.n))

    def finish(self, peer: str, size: int) -> None:
        """Show ``peer`` as complete (the last report may have been skipped by rate limits)."""
        self.update(Report("", size, size, peer))

    def close(self) -> None:
        """Leave the bars on screen as they are, release the terminal, and draw no more."""
        with self._lock:
            self._closed = True
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
