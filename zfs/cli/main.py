"""The console script ``zfs-stream``: the command group with every command attached."""

from __future__ import annotations

from zfs.cli.group import main
from zfs.cli.options import with_global_options
from zfs.cli.serve import share, site
from zfs.cli.tools import bench, demo
from zfs.cli.transfer import pull, push

for _command in (site, push, share, pull, demo, bench):
    main.add_command(with_global_options(_command))

__all__ = ["main"]
