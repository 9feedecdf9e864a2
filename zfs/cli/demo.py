"""The demo (``zfs-stream demo``): a file pushed to two sites, then pulled by both, on loopback.

Every party is its own process running the real command (``python -m zfs``), so the
demo shows what a user gets: two recipient sites (``site``), a push from the owner
to both at once (``push``), the owner sharing the file (``share``) and each recipient
pulling it (``pull``). Each received file is then checked against the source's digest
here, independently of the transfer's own check. Everything the demo starts is stopped,
and everything it writes is deleted, however it ends.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from zfs.errors import TransferAborted
from zfs.files import Digest, file_digest
from zfs.cli.settings import format_size

log = logging.getLogger(__name__)

RECIPIENTS = ("alice", "bob")
OWNER = "owner"
_STEP_TIMEOUT = 60.0  # seconds any one party may take; the demo is meant to take a few
_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class Row:
    """One transfer of the demo, as its table shows it."""

    transfer: str
    size: int
    mb_per_s: float
    verified: bool


def table(rows: list[Row]) -> str:
    """Lay out the rows as a plain-text table."""
    lines = [f"{'transfer':<22} {'size':>10} {'MB/s':>9}  digest"]
    for row in rows:
        lines.append(f"{row.transfer:<22} {format_size(row.size):>10} {row.mb_per_s:>9.1f}  "
                     f"{'verified' if row.verified else 'MISMATCH'}")
    return "\n".join(lines)


def make_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their digest."""
    digest = Digest()
    with open(path, "wb") as f:
        for offset in range(0, size, _BLOCK):
            block = os.urandom(min(_BLOCK, size - offset))
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


class Party:
    """A child process running ``python -m zfs ...``; its stdout lines arrive on a queue."""

    def __init__(self, name: str, argv: list[str], log_file: TextIO | None) -> None:
        self.name = name
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log_file,
                                        text=True, env=_child_env())
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name=f"demo-{name}", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_line(self, wanted: Callable[[str], bool], timeout: float) -> list[str]:
        """Collect stdout lines until one is ``wanted``; return them all."""
        deadline, seen = time.monotonic() + timeout, []
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TransferAborted(f"no answer within {timeout:g} s", self.name) from None
            if line is None:
                raise TransferAborted(f"exited with {self.process.wait()}", self.name)
            seen.append(line)
            if wanted(line):
                return seen

    def finish(self, timeout: float) -> dict[str, Any]:
        """Wait for the process to end well; return the JSON record it printed last."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TransferAborted(f"still running after {timeout:g} s", self.name) from None
        lines: list[str] = []
        try:
            while (line := self.lines.get(timeout=5.0)) is not None:
                lines.append(line)
        except queue.Empty:
            raise TransferAborted("its output did not end", self.name) from None
        if code != 0 or not lines:
            raise TransferAborted(f"failed with exit code {code}", self.name)
        return dict(json.loads(lines[-1]))

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not end in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10.0)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _child_env() -> dict[str, str]:
    """Our environment, with this zfs first on the path so children run the same code.

    ZFS_* settings are left out: the demo sets what it needs on each command line, and
    a ZFS_KEYS or ZFS_BIND meant for real sites would break it.
    """
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZFS_")}
    env["PYTHONPATH"] = root + (os.pathsep + path if path else "")
    return env


class Demo:
    """The demo's parties and files; :func:`run` drives it."""

    def __init__(self, root: Path, quiet: bool, verbose: bool) -> None:
        self.root = root
        self.flags = (["-q"] if quiet else []) + (["-v"] if verbose else [])
        self.parties: list[Party] = []
        self.endpoints: dict[str, str] = {}

    def start(self, name: str, *args: str, log_to_file: bool = True) -> Party:
        """Start ``python -m zfs ARGS`` as the party ``name``."""
        argv = [sys.executable, "-m", "zfs", *self.flags, *args]
        log_file = open(self.root / f"{name}.log", "a") if log_to_file else None
        try:
            party = Party(name, argv, log_file)
        finally:
            if log_file is not None:
                log_file.close()  # the child holds its own copy
        self.parties.append(party)
        return party

    def start_recipient(self, name: str) -> None:
        """A long-running site that accepts the demo's pushes into ``name/pushed``."""
        party = self.start(name, "site", "--name", name, "--bind", "tcp://127.0.0.1:0",
                           "--receive", "demo/files", "--dest", str(self.root / name / "pushed"))
        ready = party.wait_line(lambda line: line.startswith("READY "), _STEP_TIMEOUT)[-1]
        self.endpoints[name] = ready.split()[2]

    def push(self, source: Path) -> dict[str, Any]:
        """Push ``source`` from the owner to every recipient at once."""
        connects = [arg for name in RECIPIENTS
                    for arg in ("--connect", f"{name}={self.endpoints[name]}")]
        party = self.start("push", "push", str(source), "--to", ",".join(RECIPIENTS),
                           *connects, "--channel", "demo", "--topic", "files",
                           "--name", OWNER, "--json", log_to_file=False)
        return party.finish(_STEP_TIMEOUT)

    def share(self, source: Path) -> tuple[str, str]:
        """Start the owner sharing ``source``; return the RID and the owner's endpoint."""
        party = self.start(OWNER, "share", str(source), "--name", OWNER,
                           "--bind", "tcp://127.0.0.1:0", "--timeout", "60")
        line = party.wait_line(lambda text: "zfs-stream pull" in text, _STEP_TIMEOUT)[-1]
        words = line.split()  # zfs-stream pull RID --from owner=ENDPOINT
        return words[2], words[4].partition("=")[2]

    def pull(self, name: str, rid: str, owner_endpoint: str) -> dict[str, Any]:
        """Have recipient ``name`` download ``rid`` into ``name/pulled``."""
        party = self.start(f"pull-{name}", "pull", rid, "--from", f"{OWNER}={owner_endpoint}",
                           "--out", str(self.root / name / "pulled"), "--name", name, "--json",
                           log_to_file=False)
        return party.finish(_STEP_TIMEOUT)

    def stop(self) -> None:
        """Stop every party still running."""
        for party in reversed(self.parties):
            party.stop()


def _verified(path: Path, digest: str) -> bool:
    """Whether ``path`` holds the source's bytes (a push or pull reports success only
    after the rename, so the file is in place by the time we look)."""
    return path.exists() and file_digest(path) == digest


@contextmanager
def _workspace(parent: str | None) -> Iterator[Path]:
    if parent is not None:
        os.makedirs(parent, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="zfs-demo-", dir=parent))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(size: int, workdir: str | None = None, quiet: bool = False,
        verbose: bool = False) -> list[Row]:
    """Run the whole demo with a test file of ``size`` bytes; return its table's rows.

    Raises:
        TransferAborted: a party failed; its ``site`` names it.
    """
    with _workspace(workdir) as root:
        demo = Demo(root, quiet, verbose)
        try:
            return _steps(demo, size)
        except TransferAborted:
            for party in demo.parties:
                log_path = root / f"{party.name}.log"
                if log_path.exists() and log_path.stat().st_size:
                    log.warning("log of %s:\n%s", party.name, log_path.read_text()[-2000:])
            raise
        finally:
            demo.stop()


def _steps(demo: Demo, size: int) -> list[Row]:
    source = demo.root / OWNER / "demo.bin"
    source.parent.mkdir(parents=True)
    digest = make_file(source, size)
    for name in RECIPIENTS:
        demo.start_recipient(name)
    pushed = demo.push(source)
    rows = [Row(f"push {OWNER} -> {name}", size, pushed["mb_per_s"],
                _verified(demo.root / name / "pushed" / source.name, digest))
            for name in RECIPIENTS]
    rid, endpoint = demo.share(source)
    for name in RECIPIENTS:
        pulled = demo.pull(name, rid, endpoint)
        rows.append(Row(f"pull {name} <- {OWNER}", size, pulled["mb_per_s"],
                        _verified(Path(pulled["path"]), digest)))
    return rows
