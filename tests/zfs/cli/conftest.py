"""Running the real ``zfs-stream`` as a person does: in a child process, or in a terminal.

:func:`zfs` runs the installed console script (``python -m zfs`` where there is none)
and returns its exit code and output. :class:`Terminal` runs it on a pseudo-terminal
of a given width, so progress bars are drawn as on a screen and can be read back.
:func:`serve` starts a long-running command (``site``, ``share``) and waits for the
line it prints once it is up.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import pytest

from tests.support.procs import REPO_ROOT
from zfs.cli.demo import Party

_SCRIPT = Path(sys.executable).parent / "zfs-stream"
#: The command as a person types it.
ZFS_STREAM = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "zfs"]
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def clean_env(**extra: str) -> dict[str, str]:
    """Our environment without ZFS_* settings (a developer's own must not leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZFS_")}
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def zfs(*args: str, env: Optional[dict[str, str]] = None, stdin: Optional[bytes] = None,
        timeout: float = 60, cwd: Optional[Path] = None) -> subprocess.CompletedProcess[str]:
    """Run ``zfs-stream ARGS`` to its end; its output as text."""
    result = subprocess.run([*ZFS_STREAM, *args], input=stdin, capture_output=True,
                            timeout=timeout, env=env or clean_env(), cwd=cwd)
    return subprocess.CompletedProcess(result.args, result.returncode,
                                       result.stdout.decode(errors="replace"),
                                       result.stderr.decode(errors="replace"))


def one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """The command failed with one line on stderr that names ``words``; return it."""
    assert result.returncode not in (0, None), result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def screen_lines(text: str) -> list[str]:
    """What a terminal showed, line by line: carriage returns and escapes resolved."""
    lines = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        for piece in _ANSI.split(raw):
            lines.extend(part for part in piece.split("\r") if part.strip())
    return lines


class Terminal:
    """``zfs-stream ARGS`` with stdout and stderr on a pseudo-terminal ``columns`` wide."""

    def __init__(self, *args: str, columns: int = 74, env: Optional[dict[str, str]] = None,
                 cwd: Optional[Path] = None) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        self.process = subprocess.Popen([*ZFS_STREAM, *args], stdin=subprocess.DEVNULL,
                                        stdout=slave, stderr=slave, env=env or clean_env(),
                                        cwd=cwd, start_new_session=True)
        os.close(slave)
        self._master = master
        self.output = ""

    def read_until(self, wanted: Callable[[str], bool], timeout: float) -> str:
        """Read until ``wanted(all output so far)`` or the end; return all output."""
        deadline = time.monotonic() + timeout
        while not wanted(self.output):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not seen within {timeout} s; output:\n{self.output}")
            ready, _, _ = select.select([self._master], [], [], min(left, 0.2))
            if ready:
                try:
                    data = os.read(self._master, 65536)
                except OSError:         # EIO: the other side closed
                    data = b""
                if not data:
                    if self.process.poll() is not None:
                        break
                    continue
                self.output += data.decode(errors="replace")
        return self.output

    def finish(self, timeout: float = 60) -> int:
        """Read to the end; return the exit code."""
        self.read_until(lambda _: False if self.process.poll() is None else True, timeout)
        try:
            while True:
                ready, _, _ = select.select([self._master], [], [], 0.2)
                if not ready:
                    break
                data = os.read(self._master, 65536)
                if not data:
                    break
                self.output += data.decode(errors="replace")
        except OSError:
            pass
        return self.process.wait(timeout)

    def interrupt(self) -> None:
        """Ctrl-C, as the terminal would send it."""
        self.process.send_signal(signal.SIGINT)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        os.close(self._master)


@contextmanager
def serve(name: str, *args: str, ready: str,
          log: Optional[Path] = None) -> Iterator[tuple[Party, list[str]]]:
    """A long-running ``zfs-stream ARGS``; yields it and its stdout up to a line with ``ready``."""
    log_file = open(log, "w") if log is not None else subprocess.DEVNULL
    try:
        party = Party(name, [*ZFS_STREAM, *args], log_file)  # type: ignore[arg-type]
    finally:
        if log is not None:
            log_file.close()  # type: ignore[union-attr]
    try:
        yield party, party.wait_line(lambda line: ready in line, 30)
    finally:
        party.stop()


def data(path: Path, size: int) -> Path:
    """A file of ``size`` random bytes at ``path``."""
    path.write_bytes(os.urandom(size))
    return path


@pytest.fixture
def receiving_site(tmp_path: Path) -> Iterator[tuple[Party, str, Path, Path]]:
    """``zfs-stream site`` named alice, receiving demo/files; (party, endpoint, inbox, log)."""
    inbox, log = tmp_path / "inbox", tmp_path / "alice.log"
    with serve("alice", "site", "--name", "alice", "--bind", "127.0.0.1:0", "--receive",
               "demo/files", "--dest", str(inbox), ready="READY", log=log) as (party, lines):
        yield party, lines[-1].split()[2], inbox, log


@contextmanager
def sharing(tmp_path: Path, *files: Path, extra: Sequence[str] = ()
            ) -> Iterator[tuple[Party, list[tuple[str, str]]]]:
    """``zfs-stream share FILES``: yields it and (RID, --from value) per file."""
    log = tmp_path / "share.log"
    with serve("owner", "share", *map(str, files), "--bind", "127.0.0.1:0", *extra,
               ready="download with:", log=log) as (party, _lines):
        pulls = [party.wait_line(lambda line: "zfs-stream pull" in line, 20)[-1].split()
                 for _ in files]
        yield party, [(words[2], words[4]) for words in pulls]


@pytest.fixture(autouse=True)
def config_home(tmp_path_factory: pytest.TempPathFactory,
                monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$XDG_CONFIG_HOME`` for the test, where ``share`` keeps its RID secret (children
    inherit it), so no test writes into the user's own config folder (nor its tmp_path)."""
    home = tmp_path_factory.mktemp("config-home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def repo_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Children started by :func:`serve` (``Party`` passes our environment on) import this
    checkout's code, as :func:`zfs`'s do, not the one the console script was installed from."""
    monkeypatch.setenv("PYTHONPATH", clean_env()["PYTHONPATH"])
