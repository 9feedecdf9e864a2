"""The ``zfs-stream`` command (also ``python -m zfs``): run sites, push, share, pull, demo.

Every command is a thin edge over the library: it settles its settings
(:mod:`zfs.settings`), starts a site, calls :mod:`zfs.push` or :mod:`zfs.pull`, and
draws progress (:mod:`zfs.progress`). Errors a person can act on (an unknown site, a
refused or unreachable one, a bad RID, a missing file, a full disk, a wrong key) end
the command with one line on stderr and a non-zero exit; ``-v`` adds the traceback
and debug logs.

This package assembles the group ``main`` (the console script ``zfs-stream``) from:

- :mod:`zfs.cli.group`: ``main`` itself, logging, one-line errors, lazy ``keys``;
- :mod:`zfs.cli.options`: arguments into settings (:class:`Common`, ``ZFS_*`` options);
- :mod:`zfs.cli.errors`: :class:`Interrupted` and :func:`describe`;
- :mod:`zfs.cli.session`: the site a command runs, and waits that Ctrl-C ends;
- :mod:`zfs.cli.serve`: ``site`` and ``share``;
- :mod:`zfs.cli.transfer`: ``push`` and ``pull``;
- :mod:`zfs.cli.tools`: ``demo`` and ``bench``.

Every name of the former single module ``zfs/cli.py`` stays importable from here.
"""

from __future__ import annotations

import logging

from zfs.cli.errors import Interrupted, describe
from zfs.cli.group import _SERVING, _Group, _keys_command, _setup_logging, _StderrHandler, main
from zfs.cli.options import (_CONNECT_TIMEOUT, _JSON, _KEYS, _METAVARS, Common, _check_file,
                             _options, _peers, _setting, _settings)
from zfs.cli.serve import (_announce, _log_downloaded, _log_received, _receivers, share,
                           site)
from zfs.cli.session import _await, _curve, _site, _until_signal, _wait_for
from zfs.cli.tools import bench, demo
from zfs.cli.transfer import _report, pull, push

#: The command's own logger; every module of this package logs under it.
log = logging.getLogger(__name__)

main.add_command(site)
main.add_command(push)
main.add_command(share)
main.add_command(pull)
main.add_command(demo)
main.add_command(bench)

__all__ = [
    "Common", "Interrupted", "bench", "demo", "describe", "log", "main", "pull", "push",
    "share", "site",
    # The single module's helpers, kept importable for code written against it.
    "_CONNECT_TIMEOUT", "_Group", "_JSON", "_KEYS", "_METAVARS", "_SERVING", "_StderrHandler",
    "_announce", "_await", "_check_file", "_curve", "_keys_command", "_log_downloaded",
    "_log_received", "_options", "_peers", "_receivers", "_report", "_setting", "_settings",
    "_setup_logging", "_site", "_until_signal", "_wait_for",
]
