"""The child side of a party: ``python -m benchmarks.worker MODULE:FUNCTION PARAMS``.

It calls ``FUNCTION(params, link)`` from a module of this package. The :class:`Link`
is the party's line to the parent: JSON lines on a private copy of the original
stdout (fd 1 itself is pointed at stderr, so nothing a library prints can garble the
conversation), and JSON lines or end-of-file on stdin.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import traceback
from typing import Any, Callable

from actors.process import tune_malloc

#: Set in a party's environment: run it as a plain process (no tune_malloc).
PLAIN_ENV = "ZFS_BENCH_PLAIN"


class Link:
    """JSON lines to and from the parent process."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self._out = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)

    def send(self, **fields: Any) -> None:
        """Send the parent one message."""
        self._out.write(json.dumps(fields) + "\n")
        self._out.flush()

    def recv(self) -> dict[str, Any]:
        """Wait for the parent's next message; end of input reads as ``{"op": "quit"}``."""
        line = sys.stdin.readline()
        if not line:
            return {"op": "quit"}
        message: dict[str, Any] = json.loads(line)
        return message

    def wait_quit(self) -> None:
        """Wait until the parent says quit or closes our stdin."""
        while self.recv().get("op") != "quit":
            pass


def main(argv: list[str]) -> int:
    """Run one party; report an uncaught error to the parent and exit 1."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    role, params = argv[1], json.loads(argv[2])
    # Every party, ours and raw alike, runs as a process whose job is moving bytes:
    # with the malloc settings our entry points set (python -m actors, zfs-stream),
    # unless the run measures processes as a user's program is (--as-user).
    if not os.environ.get(PLAIN_ENV):
        tune_malloc()
    link = Link()
    try:
        function = _resolve(role)
        function(params, link)
    except Exception as err:  # the top of a party: report it, the parent raises it
        traceback.print_exc()
        link.send(error=f"{type(err).__name__}: {err}")
        return 1
    link.send(peak_rss_kib=peak_rss_kib())
    return 0


def peak_rss_kib() -> int:
    """Return this process's peak resident set in KiB: ``VmHWM`` of /proc/self/status.

    Not ``getrusage``/``wait4``'s ``ru_maxrss``: across the vfork+exec that starts a
    party, Linux folds the *parent's* high-water mark into it, so a party started by
    a parent of 300 MiB reports at least 300 MiB. ``VmHWM`` belongs to the party's
    own address space, the one it got at exec.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _resolve(role: str) -> Callable[[dict[str, Any], Link], None]:
    module_name, _, function_name = role.partition(":")
    if not module_name.startswith("benchmarks.") or not function_name:
        raise ValueError(f"not a benchmark role: {role!r}")
    function: Callable[[dict[str, Any], Link], None] = getattr(
        importlib.import_module(module_name), function_name)
    return function


if __name__ == "__main__":
    sys.exit(main(sys.argv))
