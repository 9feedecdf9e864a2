"""Facades with the APIs of the two systems zfs grew from, so their users port line by line.

- :mod:`zfs.compat.flare`: FLARE's ``FileStreamer`` (push) and ``FileDownloader`` (pull).
- :mod:`zfs.compat.nanite`: Nanite's ``broadcast_file`` / ``broadcast_data`` /
  ``subscribe_to_files``.

They are thin layers over :mod:`zfs.push` and :mod:`zfs.pull`, not a second
implementation; where the original takes a context object, they take our ``Site``.
"""
