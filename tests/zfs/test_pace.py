"""Pacing (zfs/pace.py): the token bucket's bound, and the shells that use it for ``bwlimit``.

The pure part is driven with made-up times; the shells run on two sites in this
process and are checked by the time a capped transfer cannot beat (size - burst) / rate,
which only a slow machine makes longer, never shorter.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import actors
from zfs import download, push_file, register_receiver, share
from zfs.files import file_digest
from zfs.pace import MIN_CHUNK, Pacer, TokenBucket, fit_window

MiB = 1 << 20


def test_a_full_bucket_lets_a_burst_go_then_paces_at_the_rate() -> None:
    bucket = TokenBucket(rate=1000.0, burst=500, now=0.0)
    assert bucket.delay(500, 0.0) == 0.0
    bucket.take(500, 0.0)
    assert bucket.delay(100, 0.0) == pytest.approx(0.1)
    assert bucket.delay(100, 0.1) == 0.0


def test_a_size_over_the_burst_waits_for_a_full_bucket_and_leaves_debt() -> None:
    bucket = TokenBucket(rate=1000.0, burst=100, now=0.0)
    assert bucket.delay(300, 0.0) == 0.0
    bucket.take(300, 0.0)
    assert bucket.delay(100, 0.0) == pytest.approx(0.3)   # 200 of debt, then 100


def test_the_pacer_keeps_the_order_and_says_when_to_wake() -> None:
    pacer: Pacer[str] = Pacer(rate=100.0, burst=10, now=0.0)
    assert pacer.offer("a", 10, 0.0) == ["a"]
    assert pacer.offer("b", 10, 0.0) == []
    assert pacer.offer("c", 1, 0.0) == []           # small, but behind b
    assert pacer.wake_at == pytest.approx(0.1)
    assert pacer.due(0.05) == []
    assert pacer.due(0.1) == ["b"]
    assert pacer.due(0.11) == ["c"] and pacer.wake_at is None and len(pacer) == 0


def test_an_uncapped_pacer_lets_everything_go_and_a_cap_can_be_lifted() -> None:
    pacer: Pacer[int] = Pacer(rate=None, burst=1, now=0.0)
    assert [x for i in range(5) for x in pacer.offer(i, 1 << 30, 0.0)] == [0, 1, 2, 3, 4]
    capped: Pacer[int] = Pacer(rate=1.0, burst=1, now=0.0)
    assert capped.offer(1, 1, 0.0) == [1] and capped.offer(2, 1, 0.0) == []
    capped.set_rate(float("inf"), 0.0)
    assert capped.due(0.0) == [2] and capped.rate is None


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(10.0, 1e6), burst=st.integers(1, 4096),
       offers=st.lists(st.tuples(st.floats(0.0, 0.5), st.integers(1, 4096)), max_size=60),
       wakes=st.lists(st.floats(0.0, 0.5), max_size=30))
def test_bytes_let_go_in_any_interval_stay_within_burst_plus_rate_times_it(
        rate: float, burst: int, offers: list[tuple[float, int]], wakes: list[float]) -> None:
    """Offers at any times, wakes early, late or never: the bound holds for every window."""
    pacer: Pacer[int] = Pacer(rate, burst, 0.0)
    sizes, sent, now = [], [], 0.0
    events = sorted([(gap, "offer", size) for gap, size in offers]
                    + [(gap, "wake", 0) for gap in wakes], key=lambda e: e[0])
    for at, kind, size in events:
        now = max(now, at)
        if kind == "offer":
            sizes.append(min(size, burst))
            ready = pacer.offer(len(sizes) - 1, sizes[-1], now)
        else:
            ready = pacer.due(now)
        sent += [(now, sizes[i]) for i in ready]
        if pacer.wake_at is not None:
            assert pacer.wake_at > now
    for i, (start, _) in enumerate(sent):
        for j in range(i, len(sent)):
            moved = sum(size for _, size in sent[i:j + 1])
            assert moved <= burst + rate * (sent[j][0] - start) + 1e-6 * rate + 1


def test_a_download_window_shrinks_to_what_the_cap_moves_in_half_a_timeout() -> None:
    assert fit_window(None, 8, MiB, 10.0) == (8, MiB)
    assert fit_window(100 * MiB, 8, MiB, 10.0) == (8, MiB)
    window, chunk = fit_window(1 * MiB, 8, MiB, 10.0)      # 5 MiB in half a timeout
    assert (window, chunk) == (5, MiB)
    window, chunk = fit_window(50_000, 8, MiB, 10.0)       # 250 kB: one smaller chunk
    assert window == 1 and chunk == 250_000
    assert fit_window(10.0, 8, MiB, 10.0) == (1, MIN_CHUNK)


# ---- the shells under a cap ---------------------------------------------------------

def _pair(tmp_path: Path) -> tuple[actors.Site, actors.Site]:
    a = actors.Site("capa", bind="tcp://127.0.0.1:0").start()
    b = actors.Site("capb", connect={"capa": a.endpoint or ""}).start()
    b.wait_for("capa")
    return a, b


@pytest.mark.timeout(60)
def test_push_download_and_share_each_hold_to_their_cap(tmp_path: Path) -> None:
    size, rate, chunk = 2 * MiB, 4 * MiB, 128 << 10
    source = tmp_path / "capped.bin"
    source.write_bytes(os.urandom(size))
    a, b = _pair(tmp_path)
    try:
        (tmp_path / "in").mkdir()
        register_receiver(a, "c", "t", dest_dir=str(tmp_path / "in"))
        started = time.monotonic()
        result = push_file(b, "capa", str(source), channel="c", topic="t",
                           chunk_size=chunk, bwlimit=rate)
        assert time.monotonic() - started >= (size - chunk) / rate
        assert result.size == size

        tx = share(a, timeout=30)
        rid = tx.add_file(str(source))
        started = time.monotonic()
        got = download(b, "capa", rid, str(tmp_path / "dl"), chunk_size=chunk, bwlimit=rate)
        assert time.monotonic() - started >= (size - chunk) / rate
        assert file_digest(got.path) == file_digest(source)

        share(a, timeout=30, bwlimit=rate)            # the owner's cap, for the site
        started = time.monotonic()
        got = download(b, "capa", rid, str(tmp_path / "dl2"), chunk_size=chunk)
        assert time.monotonic() - started >= (size - MiB) / rate
        assert file_digest(got.path) == file_digest(source)
        tx.close()
    finally:
        b.stop()
        a.stop()


def test_a_cap_must_be_above_zero(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    try:
        with pytest.raises(ValueError, match="bwlimit"):
            push_file(b, "capa", __file__, bwlimit=0)
        with pytest.raises(ValueError, match="bwlimit"):
            download(b, "capa", "rid", str(tmp_path), bwlimit=-1.0)
        with pytest.raises(ValueError, match="bwlimit"):
            share(a, bwlimit=0)
    finally:
        b.stop()
        a.stop()
