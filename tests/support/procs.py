"""Sites in separate OS processes, for tests that cross process boundaries."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import actors

REPO_ROOT = Path(__file__).resolve().parents[2]


class SiteProcess:
    """A ``python -m actors`` site in a child process, with a control actor "ctl".

    Args:
        name: the child's site name.
        connect: peers the child connects to, ``{name: endpoint}``.
        spawn: extra actors, ``{actor_name: "module:Class"}``.
        bind: the child's bind endpoint (an OS-chosen port by default).
        options: numeric site options (``actors.options.SiteOptions``).
        log_path: a file for the child's log (stderr) instead of the test's output.
    """

    def __init__(self, name: str, connect: Mapping[str, str] | None = None,
                 spawn: Mapping[str, str] | None = None, bind: str = "tcp://127.0.0.1:0",
                 log_level: str = "WARNING", extra_args: Sequence[str] = (),
                 options: Mapping[str, float] | None = None,
                 log_path: Path | None = None) -> None:
        self.name = name
        self.endpoint = ""
        self._argv = [sys.executable, "-m", "actors", "--name", name, "--bind", bind,
                      "--log-level", log_level, "--spawn", "ctl=tests.support.control:Control"]
        for peer, endpoint in (connect or {}).items():
            self._argv += ["--connect", f"{peer}={endpoint}"]
        for actor_name, spec in (spawn or {}).items():
            self._argv += ["--spawn", f"{actor_name}={spec}"]
        for option, value in (options or {}).items():
            self._argv += ["--option", f"{option}={value}"]
        self._argv += list(extra_args)
        self._log_path = log_path
        self.process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 20.0) -> SiteProcess:
        """Start the child and wait for its READY line (with its real endpoint)."""
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep
                   + os.environ.get("PYTHONPATH", ""))
        log = open(self._log_path, "w") if self._log_path is not None else None
        try:
            self.process = subprocess.Popen(self._argv, stdout=subprocess.PIPE, text=True,
                                            env=env, cwd=REPO_ROOT, stderr=log)
        finally:
            if log is not None:
                log.close()  # the child has its own copy
        line = _read_line(self.process, timeout)
        parts = line.split()
        if len(parts) != 3 or parts[0] != "READY":
            self.kill()
            raise RuntimeError(f"site {self.name} did not start: {line!r}")
        self.endpoint = parts[2]
        return self

    def memory(self) -> tuple[int, int]:
        """The child's resident memory now and its peak so far (VmRSS, VmHWM), in bytes."""
        fields = {}
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    fields[key] = int(value.split()[0]) * 1024
        return fields["VmRSS"], fields["VmHWM"]

    def kill(self) -> None:
        """SIGKILL the child (a crash, as far as its peers can tell) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM the child and return its exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def call(self, via: actors.Site, func: str, *args: Any, timeout: float = 30.0,
             **kwargs: Any) -> Any:
        """Call ``func`` ("module:name") in the child with its Site first; return the result."""
        return via.ask(f"{self.name}/ctl", {"call": func, "args": list(args), "kwargs": kwargs},
                       timeout=timeout)

    def start_job(self, via: actors.Site, func: str, *args: Any, **kwargs: Any) -> str:
        """Start ``func`` on a thread in the child; returns a job id for :meth:`job`."""
        return via.ask(f"{self.name}/ctl", {"start": func, "args": list(args),
                                             "kwargs": kwargs}, timeout=10)

    def job(self, via: actors.Site, job_id: str) -> dict[str, Any]:
        """The state of a job: {"state": "running"|"done"|"failed", "result": ...}."""
        return via.ask(f"{self.name}/ctl", {"job": job_id}, timeout=10)

    def wait_job(self, via: actors.Site, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll a job until it ends or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.job(via, job_id)
            if state["state"] != "running":
                return state
            time.sleep(0.05)  # poll interval of a deadline-bounded wait
        raise TimeoutError(f"job {job_id} on {self.name} still running after {timeout} s")

    def events(self, via: actors.Site, name: str) -> list[Any]:
        """What the recorder callback ``name`` has recorded so far."""
        return via.ask(f"{self.name}/ctl", {"events": name}, timeout=10)

    def __enter__(self) -> SiteProcess:
        return self.start() if self.process is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    try:
        if not selector.select(timeout):
            return ""
        return process.stdout.readline()
    finally:
        selector.close()


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def hub_site(**options: Any) -> actors.Site:
    """The test process's own site "test", quick to notice a lost peer (~2 s)."""
    return actors.Site("test", bind="tcp://127.0.0.1:0", **{
        "heartbeat_interval": 0.5, "heartbeat_timeout": 2.0, **options})


def start_sites(hub: actors.Site, *names: str, **connect: str) -> list[SiteProcess]:
    """Start child sites connected to ``hub`` (and ``connect``); all up, or none left running."""
    procs = [SiteProcess(n, connect={"test": str(hub.endpoint), **connect}) for n in names]
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            hub.wait_for(proc.name, timeout=20)
    except BaseException:
        for proc in procs:
            proc.kill()
        raise
    return procs
