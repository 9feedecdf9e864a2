"""Log lines a peer can cause, at a bounded rate.

Whatever a peer sends once, it can send ten thousand times: a line logged per
message would let it fill the disk and spend the site's CPU on formatting. Every
log call a peer's message can reach goes through a :class:`LogLimit`: each call
site (its format string) gets ``burst`` lines per ``interval``; past that, lines
are counted, and one line says how many were left out once the interval is over.
So a flood costs at most ``burst + 1`` lines per call site per interval.

One owner per limit and no lock: the I/O thread, an actor, the ZAP handler each
hold their own.
"""

from __future__ import annotations

import logging
import time
from typing import Any

#: Lines per call site per interval, and the interval (seconds).
BURST = 5
INTERVAL = 10.0


class LogLimit:
    """Logs through ``logger`` at most ``burst`` lines per format string per ``interval``."""

    def __init__(self, logger: logging.Logger, burst: int = BURST,
                 interval: float = INTERVAL) -> None:
        self._logger = logger
        self._burst = burst
        self._interval = interval
        # format string -> [lines logged this interval, lines left out, interval's end]
        self._sites: dict[str, list[Any]] = {}

    def warning(self, msg: str, *args: Any, exc_info: bool = False) -> None:
        """Log at WARNING, unless this call site used up its lines."""
        self.log(logging.WARNING, msg, *args, exc_info=exc_info)

    def info(self, msg: str, *args: Any) -> None:
        """Log at INFO, unless this call site used up its lines."""
        self.log(logging.INFO, msg, *args)

    def error(self, msg: str, *args: Any, exc_info: bool = False) -> None:
        """Log at ERROR, unless this call site used up its lines."""
        self.log(logging.ERROR, msg, *args, exc_info=exc_info)

    def log(self, level: int, msg: str, *args: Any, exc_info: bool = False) -> None:
        """Log ``msg % args`` at ``level``, or count it as left out."""
        if not self._logger.isEnabledFor(level):
            return
        now = time.monotonic()
        site = self._sites.get(msg)
        if site is None or now >= site[2]:
            if site is not None and site[1]:
                self._summarise(msg, site[1])
            site = self._sites[msg] = [0, 0, now + self._interval]
        if site[0] < self._burst:
            site[0] += 1
            self._logger.log(level, msg, *args, exc_info=exc_info)
        else:
            site[1] += 1

    def flush(self, now: float) -> None:
        """Say how many lines each call site left out in an interval that is over."""
        for msg, site in list(self._sites.items()):
            if now >= site[2]:
                if site[1]:
                    self._summarise(msg, site[1])
                del self._sites[msg]

    def _summarise(self, msg: str, left_out: int) -> None:
        self._logger.warning("%d more lines like %r left out in %g s", left_out, msg,
                             self._interval)
