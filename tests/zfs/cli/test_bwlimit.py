"""``--bwlimit`` measured where the bytes travel: through the link emulator's relay.

The test samples the relay's byte counter while a capped command runs and checks, for
every pair of samples, that the bytes moved between them stay within what the token
bucket lets go in that interval, ``rate * interval + burst``, plus what it may have let
go before the interval and the relay had not seen yet: at most a window of chunks
(``window * chunk``), since a chunk the bucket let go stays unacknowledged (push) or
unanswered (pull) until it is through. Plus a little for message headers, acks and
heartbeats. No wall-clock threshold: a slow machine only makes the bytes per interval
smaller.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.linkemu import LinkEmulator
from tests.zfs.cli.conftest import ZFS_STREAM, clean_env, data, serve, sharing
from zfs.files import file_digest

RATE = 4_000_000            # bytes per second, the cap under test
SIZE = 6 << 20              # a transfer of ~1.6 s at the cap
CHUNK = 64 << 10
WINDOW = 4                  # chunks in flight: what may be on its way when a sample is taken
OVERHEAD = 32 << 10
CAPPED_CHUNKS = ("--chunk-size", "64KiB", "--window", str(WINDOW))


Samples = list[tuple[float, int]]


def run_through(link: LinkEmulator, *args: str) -> tuple[dict[str, Any], Samples]:
    """Run ``zfs-stream ARGS --json`` while sampling the relay; its record and the samples."""
    process = subprocess.Popen([*ZFS_STREAM, *args, "--json"], env=clean_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = []
    try:
        while process.poll() is None:
            samples.append((time.monotonic(), link.stats()["forwarded"]))
            time.sleep(0.05)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    samples.append((time.monotonic(), link.stats()["forwarded"]))
    assert process.returncode == 0, err
    return json.loads(out), samples


def assert_within_cap(samples: Samples, burst: int) -> None:
    assert samples[-1][1] >= SIZE, samples[-1]          # the file did cross the relay
    for i, (start, before) in enumerate(samples):
        for end, after in samples[i + 1:]:
            allowed = RATE * (end - start) + burst + WINDOW * CHUNK + OVERHEAD
            assert after - before <= allowed, (
                f"{after - before} bytes in {end - start:.3f} s; the cap allows {allowed:.0f} "
                f"({(after - before) / max(end - start, 1e-9) / 1e6:.1f} MB/s observed)")


@pytest.mark.timeout(60)
def test_push_holds_to_its_cap_on_the_link(tmp_path: Path) -> None:
    source = data(tmp_path / "capped.bin", SIZE)
    with serve("alice", "site", "--name", "alice", "--bind", "127.0.0.1:0", "--receive",
               "demo/files", "--dest", str(tmp_path / "in"), ready="READY") as (_, lines), \
            LinkEmulator.to_endpoint(lines[-1].split()[2]) as link:
        record, samples = run_through(link, "push", str(source), "--to", "alice", "--connect",
                                      f"alice={link.endpoint}", "--channel", "demo", "--topic",
                                      "files", *CAPPED_CHUNKS, "--bwlimit", "4MB/s")
    assert_within_cap(samples, burst=CHUNK)
    # Over the whole push too: bytes / elapsed <= rate + burst / elapsed.
    assert SIZE / record["seconds"] <= RATE + CHUNK / record["seconds"]
    assert file_digest(tmp_path / "in" / "capped.bin") == file_digest(source)


@pytest.mark.timeout(60)
def test_pull_holds_to_its_cap_on_the_link(tmp_path: Path) -> None:
    source = data(tmp_path / "capped.bin", SIZE)
    with sharing(tmp_path, source) as (_, [(rid, where)]), \
            LinkEmulator.to_endpoint(where.partition("=")[2]) as link:
        record, samples = run_through(link, "pull", rid, "--from", f"owner={link.endpoint}",
                                      "--out", str(tmp_path / "out"), *CAPPED_CHUNKS,
                                      "--bwlimit", "4MB/s")
    assert_within_cap(samples, burst=CHUNK)
    assert record["mb_per_s"] * 1e6 <= RATE + CHUNK / record["seconds"]
    assert file_digest(tmp_path / "out" / "capped.bin") == file_digest(source)


@pytest.mark.timeout(60)
def test_a_site_holds_what_it_serves_to_its_cap_on_the_link(tmp_path: Path) -> None:
    source = data(tmp_path / "capped.bin", SIZE)
    with serve("hub", "site", "--name", "hub", "--bind", "127.0.0.1:0", "--share", str(source),
               "--bwlimit", "4MB/s", ready="zfs-stream pull") as (_, lines), \
            LinkEmulator.to_endpoint(lines[-1].split()[4].partition("=")[2]) as link:
        rid = lines[-1].split()[2]
        _, samples = run_through(link, "pull", rid, "--from", f"hub={link.endpoint}", "--out",
                                 str(tmp_path / "out"), *CAPPED_CHUNKS)
    assert_within_cap(samples, burst=1 << 20)        # an owner's bucket holds one MiB
    assert file_digest(tmp_path / "out" / "capped.bin") == file_digest(source)
