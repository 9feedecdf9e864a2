"""Pacing what a shell sends: a token bucket, and the commands it lets go in order.

Pure, like :mod:`zfs.protocol`: time is the ``now`` argument (monotonic seconds); no
clocks, threads or I/O. A shell offers each command that puts bytes on the link (a
chunk to read and send, a request for one) with its size in bytes; the
:class:`Pacer` answers with the commands that may go now, keeps the rest in the order
offered, and says when the first of them may go (the shell arms a timer for then).

The bound: while every size is at most ``burst``, the bytes let go in any interval of
``T`` seconds are at most ``burst + rate * T``. A size above ``burst`` goes once the
bucket is full and leaves it in debt, so the long-run rate still holds; the bound then
grows by the excess.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Generic, Optional, TypeVar

T = TypeVar("T")

#: Bytes of tolerance when comparing tokens, so float rounding cannot make a timer that
#: fires on time find the bucket a hair short (and arm itself again for nothing).
_SLACK = 1e-3
#: The smallest chunk :func:`fit_window` shrinks a download's chunk to.
MIN_CHUNK = 4 << 10


def check_rate(bwlimit: Optional[float]) -> None:
    """Refuse a cap that is not a rate above 0 bytes per second (None: no cap).

    Raises:
        ValueError: it is 0, negative or not a number.
    """
    if bwlimit is not None and not bwlimit > 0:
        raise ValueError(f"bwlimit must be above 0 bytes/s (or None), not {bwlimit!r}")


class TokenBucket:
    """A bucket of ``burst`` bytes, refilled at ``rate`` bytes per second, full at ``now``.

    Raises:
        ValueError: ``rate`` is not above 0, or ``burst`` is below 1.
    """

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, not {rate!r} and {burst!r}")
        self.rate = float(rate)
        self.burst = int(burst)
        self._tokens = float(burst)
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
            self._at = now

    def delay(self, size: int, now: float) -> float:
        """Seconds from ``now`` until ``size`` bytes may go (0.0: they may go now)."""
        self._refill(now)
        need = min(size, self.burst)
        missing = need - self._tokens
        return 0.0 if missing <= _SLACK else missing / self.rate

    def take(self, size: int, now: float) -> None:
        """Spend ``size`` bytes (call it only once :meth:`delay` said 0.0)."""
        self._refill(now)
        self._tokens -= size


class Pacer(Generic[T]):
    """Commands let go in the order offered, at most ``rate`` bytes per second.

    Args:
        rate: bytes per second, or None (or infinity) to let every command go at once.
        burst: the bucket's size in bytes (at least the largest size offered, for the
            bound in the module docstring).
    """

    def __init__(self, rate: Optional[float], burst: int, now: float) -> None:
        self._burst = burst
        self._bucket: Optional[TokenBucket] = None
        self.set_rate(rate, now)
        self._waiting: deque[tuple[T, int]] = deque()
        self.wake_at: Optional[float] = None
        """When the first waiting command may go; None while none waits."""

    @property
    def rate(self) -> Optional[float]:
        """The cap in bytes per second (None: none)."""
        return self._bucket.rate if self._bucket is not None else None

    def set_rate(self, rate: Optional[float], now: float) -> None:
        """Change the cap from ``now`` on (a full bucket); what waits stays in order."""
        if rate is None or math.isinf(rate):
            self._bucket = None
        else:
            self._bucket = TokenBucket(rate, self._burst, now)

    def __len__(self) -> int:
        return len(self._waiting)

    def offer(self, item: T, size: int, now: float) -> list[T]:
        """Queue ``item`` (``size`` bytes); return the commands that may go now, in order."""
        if self._bucket is None and not self._waiting:
            return [item]
        self._waiting.append((item, size))
        return self.due(now)

    def due(self, now: float) -> list[T]:
        """Return the waiting commands that may go now, in order; update :attr:`wake_at`."""
        ready: list[T] = []
        while self._waiting:
            item, size = self._waiting[0]
            if self._bucket is not None:
                wait = self._bucket.delay(size, now)
                if wait > 0:
                    self.wake_at = now + wait
                    return ready
                self._bucket.take(size, now)
            self._waiting.popleft()
            ready.append(item)
        self.wake_at = None
        return ready


def fit_window(rate: Optional[float], window_chunks: int, chunk_size: int,
               request_timeout: float) -> tuple[int, int]:
    """A download's window and chunk size under a cap, so no request waits past its timeout.

    Requests wait their turn at the pacer, and the last of a full window waits about
    ``window_chunks * chunk_size / rate`` seconds; that must stay well under
    ``request_timeout``, or requests would be sent again (and the download fail) only
    because of our own cap. So the window holds at most half a timeout's worth of
    bytes at ``rate``: fewer chunks first, then smaller ones (not below ``MIN_CHUNK``).
    A window wider than that would not move the file any faster at that rate.

    Returns:
        ``(window_chunks, chunk_size)``, unchanged when ``rate`` is None or they fit.
    """
    if rate is None:
        return window_chunks, chunk_size
    budget = rate * request_timeout / 2
    if window_chunks * chunk_size <= budget:
        return window_chunks, chunk_size
    chunk = min(chunk_size, max(MIN_CHUNK, int(budget)))
    return max(1, min(window_chunks, int(budget // chunk))), chunk
