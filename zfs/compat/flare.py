"""NVIDIA FLARE's file streaming calls, over zfs: port FLARE code line by line.

Where FLARE takes an ``fl_ctx`` or a ``cell``, pass the ``actors.Site``; where it takes
an FQCN or a target name, pass a site name. Push (``FileStreamer``) lives in
:mod:`zfs.compat.flare_streamer`, pull (``FileDownloader``, ``download_file``) in
:mod:`zfs.compat.flare_downloader`; this module gathers them under FLARE's names.
"""

from zfs.compat.flare_downloader import FileDownloader, Signal, download_file
from zfs.compat.flare_streamer import FileStreamer, ReturnCode, StreamContextKey

__all__ = ["FileDownloader", "FileStreamer", "ReturnCode", "Signal", "StreamContextKey",
           "download_file"]
