"""``python -m zfs``: the ``zfs-stream`` command, for when the script is not on PATH."""

from zfs.cli.main import main

main(prog_name="python -m zfs")
