"""Helpers and fixtures shared by the fault tests (``tests/faults/``).

The fault tests (issue 7) make one fault happen in the middle of a transfer, then
check what the issue asks after every fault: the failure is clear and names the site
that caused it; no partial file is presented as complete; temporary files are cleaned
up; another transfer on the same sites, under way during the fault, completes intact;
and every site still serves afterwards.

The test process hosts the site "test" (fixture ``hub``, in ``tests/conftest.py``); the
other sites are child processes driven through their "ctl" actor (``tests.support.procs``);
the ``child_*`` functions at the bottom run inside them, called by the dotted path
``"tests.support.faults:child_..."``. Links are slowed or cut with the user-space relay
of ``tests.support.linkemu`` (fixture :func:`via_relay`), or by taking a veth down
between network namespaces (``tests.support.netns``, fixture :func:`network`; skipped
where namespaces cannot be made). Small disks are tmpfs mounts (fixture :func:`mounted`).

Transfers are made slow enough to be hit mid-way without sleeps: streams that stall
at a byte offset until a gate file appears (:class:`GatedSource`), or downloads
slowed by their progress callback (:class:`Throttle`).

The fixtures here are imported by name into each test module that uses them.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest

import actors
from tests.support import netns
from tests.support.linkemu import LinkEmulator
from tests.support.procs import SiteProcess, start_sites, wait_until
from zfs.files import Digest, file_digest
from zfs.partials import PARTIAL_DIR
from zfs import download, push_file, register_receiver, share

KiB, MiB = 1 << 10, 1 << 20
CHUNK = 64 * KiB
CHANNEL = "faults"
_PATTERN = bytes(range(256)) * (MiB // 256)


# ---------------------------------------------------------------- sources and checks


def _wait_for_file(path: str, timeout: float) -> None:
    """Wait until ``path`` exists, at most ``timeout`` s (it is made by another process)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)   # poll interval of a deadline-bounded wait for the gate file


class GatedSource(io.RawIOBase):
    """``size`` bytes of a fixed pattern that stall at ``gate_at`` until ``gate`` exists.

    The gate is a file path (so a test can open it for a source living in another
    process) or a threading.Event.
    """

    def __init__(self, size: int, gate_at: int, gate: Any) -> None:
        self.pos, self.size, self.gate_at, self.gate = 0, size, gate_at, gate

    def readable(self) -> bool:
        return True

    def _wait_gate(self) -> None:
        if isinstance(self.gate, threading.Event):
            self.gate.wait(60)
        else:
            _wait_for_file(self.gate, 60.0)

    def readinto(self, buf: Any) -> int:
        if self.pos >= self.gate_at:
            self._wait_gate()
        n = min(len(buf), self.size - self.pos)
        start = self.pos % MiB
        part = (_PATTERN[start:] + _PATTERN)[:n] if n <= MiB else None
        if part is None:
            raise ValueError("read at most 1 MiB at a time")
        buf[:n] = part
        self.pos += n
        return n


def gated(size: int, gate_at: int, gate: Any) -> BinaryIO:
    """A :class:`GatedSource`, typed as the binary stream push takes."""
    return cast(BinaryIO, GatedSource(size, gate_at, gate))


def pattern_digest(size: int) -> str:
    """The digest of ``size`` bytes of a :class:`GatedSource`."""
    digest, done = Digest(), 0
    while done < size:
        part = _PATTERN[: min(MiB, size - done)]
        digest.update(part)
        done += len(part)
    return digest.hexdigest()


def make_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def partials(folder: Path) -> list[str]:
    """Files in progress in ``folder``, as paths relative to it (``.zfs-partial/...``)."""
    where = folder / PARTIAL_DIR
    if not where.is_dir():
        return []
    return sorted(f"{PARTIAL_DIR}/{name}" for name in os.listdir(where))


@contextlib.contextmanager
def frozen(folder: Path) -> Iterator[None]:
    """No entry of ``folder`` can be created or deleted meanwhile (a read-only folder).

    As root, folder permissions do not stop a deletion: the folder is made immutable
    (``chattr +i``) instead.
    """
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        mode = folder.stat().st_mode
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(mode)


def assert_clean(folder: Path, *absent: str, timeout: float = 6.0) -> None:
    """No temporary file left in ``folder`` (within ``timeout``), and no ``absent`` file."""
    wait_until(lambda: partials(folder) == [], timeout)
    for name in absent:
        assert not (folder / name).exists(), f"{name} presented as complete in {folder}"


class Throttle:
    """A download's on_progress that slows it and says when it has got under way."""

    def __init__(self, delay: float, after_bytes: int) -> None:
        self.delay, self.after = delay, after_bytes
        self.under_way = threading.Event()

    def __call__(self, progress: Any) -> None:
        if progress.bytes_done >= self.after:
            self.under_way.set()
        time.sleep(self.delay)   # slows the download on purpose; not a wait


def in_thread(func: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run ``func`` on a thread; the dict gets "result" or "error", then "at"."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = func(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - the test inspects it
            out["error"] = err
        out["at"] = time.monotonic()
    out["thread"] = threading.Thread(target=run, daemon=True)
    out["thread"].start()
    return out


# ---------------------------------------------------------------- sites


@pytest.fixture
def sites(hub: actors.Site) -> Iterator[Any]:
    """Start child sites with ``sites(*names, **connect)``; all are killed after the test.

    ``sites.far(name)`` starts one that connects to nobody (the hub connects to it,
    through a relay).
    """
    started: list[SiteProcess] = []

    def start(*names: str, **connect: str) -> list[SiteProcess]:
        procs = start_sites(hub, *names, **connect)
        started.extend(procs)
        return procs

    def far(name: str) -> SiteProcess:
        proc = SiteProcess(name)
        started.append(proc)
        return proc.start()
    start.far = far  # type: ignore[attr-defined]
    yield start
    for proc in started:
        if proc.process is not None and proc.process.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGCONT)   # a stopped child cannot die of SIGKILL late
            except ProcessLookupError:
                pass
        proc.kill()


def register(hub: actors.Site, proc: SiteProcess, dest: Path, topic: str, **options: Any) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    proc.call(hub, "zfs:register_receiver", channel=CHANNEL, topic=topic,
              dest_dir=str(dest), **options)


def assert_serving(hub: actors.Site, procs: list[SiteProcess], tmp_path: Path) -> None:
    """Every site in ``procs`` still takes a push from the hub, intact."""
    src = make_file(tmp_path / "health.bin", 100 * KiB + 3)
    for proc in procs:
        hub.wait_for(proc.name, timeout=10)
        dest = tmp_path / "health" / proc.name
        register(hub, proc, dest, "health")
        push_file(hub, proc.name, src, channel=CHANNEL, topic="health", chunk_size=CHUNK,
                  chunk_timeout=10)
        assert file_digest(dest / src.name) == file_digest(src)
        os.unlink(dest / src.name)


def owner_bytes(hub: actors.Site, owner: SiteProcess) -> int:
    return int(owner.call(hub, "zfs.pull.transaction:owner_stats")["bytes_sent"])


# ---------------------------------------------------------------- links cut


@pytest.fixture
def via_relay(hub: actors.Site) -> Iterator[Any]:
    """``via_relay(proc)``: connect the hub to ``proc`` through a relay (stopped after).

    ``proc`` must not connect to the hub itself, or replies could bypass the relay.
    """
    links: list[LinkEmulator] = []

    def connect(proc: SiteProcess, delay: float = 0.005) -> LinkEmulator:
        link = LinkEmulator.to_endpoint(proc.endpoint, delay=delay)
        links.append(link.start())
        hub.connect(proc.name, link.endpoint)
        hub.wait_for(proc.name, timeout=10)
        return link
    yield connect
    for link in links:
        link.stop()


def lost(hub: actors.Site, name: str) -> bool:
    return name not in hub.peers()


# ---------------------------------------------------------------- disks


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Any]:
    """``mounted(name, options)`` mounts a small tmpfs at tmp_path/name, unmounted after."""
    points: list[Path] = []

    def mount(name: str, options: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                              capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs ({done.stderr.strip() or done.returncode})")
        points.append(point)
        return point
    yield mount
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=10)


# ---------------------------------------------------------------- namespaces


@pytest.fixture
def network() -> Iterator[netns.Network]:
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(reason)
    netns.remove_stale()
    with netns.Network() as net:
        yield net
    assert net.namespaces() == []


# ---------------------------------------------------------------- run inside child sites


def child_push_gated(site: actors.Site, target: str, topic: str, name: str, size: int,
                     gate_at: int, gate: str, chunk_timeout: float = 30.0) -> Any:
    """Push a :class:`GatedSource` that stalls at ``gate_at`` until the file ``gate`` exists."""
    site.wait_for(target, timeout=10)
    return push_file(site, target, gated(size, gate_at, gate), name=name,
                     channel=CHANNEL, topic=topic, chunk_size=CHUNK, window_chunks=2,
                     chunk_timeout=chunk_timeout)


def child_push_file(site: actors.Site, target: str, topic: str, path: str) -> Any:
    site.wait_for(target, timeout=10)
    return push_file(site, target, path, channel=CHANNEL, topic=topic, chunk_size=CHUNK)


def child_share(site: actors.Site, paths: list[str], timeout: float = 60.0,
                on_downloaded: Any = None) -> list[str]:
    tx = share(site, timeout=timeout)
    return [tx.add_file(p, on_downloaded) for p in paths]


def child_download(site: actors.Site, owner: str, rid: str, location: str,
                   delay: float = 0.0, **kwargs: Any) -> str:
    slow = (lambda progress: time.sleep(delay)) if delay else None
    return download(site, owner, rid, location, on_progress=slow, **kwargs).path


def child_register_blocking(site: actors.Site, channel: str, topic: str, dest: str,
                            gate: str) -> None:
    """Register a receiver whose app callback blocks (after one chunk) until ``gate`` exists."""
    def on_chunk(progress: Any) -> None:
        _wait_for_file(gate, 60.0)
    register_receiver(site, channel=channel, topic=topic, dest_dir=dest, on_chunk=on_chunk,
                      inactivity_timeout=1.0)
