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

"""

from __future__ import annotations

from zfs.cli.errors import Interrupted, describe
from zfs.cli.group import main
from zfs.cli.options import Common
from zfs.cli.serve import share, site
from zfs.cli.tools import bench, demo
from zfs.cli.transfer import pull, push

main.add_command(site)
main.add_command(push)
main.add_command(share)
main.add_command(pull)
main.add_command(demo)
main.add_command(bench)

__all__ = ["Common", "Interrupted", "bench", "demo", "describe", "main", "pull", "push", "share",
           "site"]
