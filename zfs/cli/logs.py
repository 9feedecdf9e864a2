"""Where the command's logs go: stderr, at a level the command and ``ZFS_LOG_LEVEL`` decide.

The library logs through ``logging`` and configures nothing; the command adds one
handler on stderr. Two levels: the library's (root), and the command's own lines
(the ``zfs.cli`` logger: what a serving command received or handed out).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

_OWN = "zfs.cli"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Logs to whatever ``sys.stderr`` is now (click's test runner swaps it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup(verbose: bool, library_level: str, own_level: str) -> None:
    """Log to stderr: the library at ``library_level``, the command at ``own_level``.

    ``verbose`` sets both to DEBUG. Called again (an option after the command name),
    it changes the levels and keeps the one handler.
    """
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else library_level)
    logging.getLogger(_OWN).setLevel(logging.DEBUG if verbose else own_level)
