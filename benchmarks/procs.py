"""Parties of a benchmark, each in its own OS process, and their peak memory.

A party is ``python -m benchmarks.worker MODULE:FUNCTION PARAMS`` (see
:mod:`benchmarks.worker`). The parent talks to it in JSON lines over its stdin and
stdout; closing its stdin tells it to finish. Its last message is its peak resident
set as the kernel counts it (``VmHWM``).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from benchmarks.worker import PLAIN_ENV

ROOT = Path(__file__).resolve().parent.parent


class BenchError(Exception):
    """A party failed, exited early, or did not answer in time."""


class Child:
    """One party in its own process, spoken to in JSON lines."""

    def __init__(self, role: str, params: dict[str, Any], *, label: str, logdir: Path,
                 plain: bool = False) -> None:
        self.label = label
        self.log_path = logdir / f"{label}.log"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
        if plain:
            env[PLAIN_ENV] = "1"
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.worker", role, json.dumps(params)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=ROOT, env=env,
            )
        self.pid = self._proc.pid
        self.peak_rss_kib: int | None = None
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._pump, name=f"bench-{label}", daemon=True).start()

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def expect(self, timeout: float) -> dict[str, Any]:
        """Return the party's next message.

        Raises:
            BenchError: it reported an error, exited, or said nothing within ``timeout``.
        """
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise BenchError(
                f"{self.label}: no answer within {timeout:.0f} s{self.log_tail()}") from None
        if line is None:
            raise BenchError(f"{self.label}: exited early{self.log_tail()}")
        message: dict[str, Any] = json.loads(line)
        if "error" in message:
            raise BenchError(f"{self.label}: {message['error']}{self.log_tail()}")
        return message

    def send(self, **fields: Any) -> None:
        """Send the party one message."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(fields).encode() + b"\n")
        self._proc.stdin.flush()

    def finish(self, timeout: float = 30.0) -> int:
        """Tell the party to finish, reap it, and return its peak RSS (``VmHWM``) in KiB.

        Raises:
            BenchError: it did not exit within ``timeout`` (it is killed), exited
                non-zero, or did not report its peak RSS.
        """
        self._close_stdin()
        code = self._reap(timeout)
        if code is None:
            self.kill()
            raise BenchError(f"{self.label}: did not exit within {timeout:.0f} s{self.log_tail()}")
        if code != 0:
            raise BenchError(f"{self.label}: exited with {code}{self.log_tail()}")
        while self.peak_rss_kib is None:
            self.peak_rss_kib = self.expect(timeout=10).get("peak_rss_kib")
        return self.peak_rss_kib

    def kill(self) -> None:
        """SIGKILL the party (if it still runs) and reap it."""
        if self._proc.returncode is not None:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._reap(10.0)
        self._close_stdin()

    def _reap(self, timeout: float) -> int | None:
        """Wait for the party to exit; return its exit code, or None if it still runs."""
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def _close_stdin(self) -> None:
        try:
            if self._proc.stdin is not None and not self._proc.stdin.closed:
                self._proc.stdin.close()
        except BrokenPipeError:
            pass

    def log_tail(self) -> str:
        """The last lines of this party's log (stderr), headed by its name; "" if none."""
        try:
            text = self.log_path.read_text(errors="replace").strip()
        except OSError:
            return ""
        if not text:
            return ""
        lines = "\n".join(text.splitlines()[-15:])
        return f"\n--- last lines of {self.log_path.name} ---\n{lines}"


class Parties:
    """Start parties for one measurement, and kill any still running when it ends."""

    def __init__(self, logdir: Path, plain: bool = False) -> None:
        self.logdir = logdir
        self.plain = plain  # parties run as plain processes (see benchmarks.worker)
        self._children: list[Child] = []

    def start(self, role: str, params: dict[str, Any], label: str) -> Child:
        """Start one party running ``role`` (``"benchmarks.module:function"``)."""
        child = Child(role, params, label=label, logdir=self.logdir, plain=self.plain)
        self._children.append(child)
        return child

    def __enter__(self) -> Parties:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for child in self._children:
            child.kill()
        if isinstance(error, BenchError):  # the other parties' view of what went wrong
            others = "".join(child.log_tail() for child in self._children
                             if f"{child.label}:" not in str(error))
            if others:
                raise BenchError(f"{error}{others}") from error


def mib(kib: int) -> float:
    """KiB (as ``ru_maxrss`` counts on Linux) to MiB."""
    return kib / 1024
