"""Our side of the pull benchmark: an owner site and recipient sites, one process each.

The owner shares the file in one transaction and tells the parent its RID; each
recipient connects, waits for "go", downloads with :func:`zfs.download` into
its own folder, and reports its start and end times. With ``"keys"`` in the params
(``--curve``) every site speaks CURVE with the keypairs in that folder and the
recipients download with ``secure=True``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import actors
from zfs import download, share

from benchmarks.curve import site_options
from benchmarks.worker import Link

OWNER = "owner"


def owner(params: dict[str, Any], link: Link) -> None:
    """Share the file until the parent says quit (linked to the sites of "connect", if
    given: a relay)."""
    with actors.Site(OWNER, bind="tcp://127.0.0.1:0", connect=params.get("connect"),
                     **site_options(params, OWNER)) as site:
        tx = share(site, timeout=params["timeout"])
        rid = tx.add_file(params["path"])
        link.send(endpoint=site.endpoint, rid=rid)
        link.wait_quit()
        tx.close()


def recipient(params: dict[str, Any], link: Link) -> None:
    """Connect to the owner (or to the sites of "connect", which reach it: a relay); on
    "go", download the file, report, delete it."""
    options = site_options(params, params["name"])
    connect = params.get("connect") or {OWNER: params["endpoint"]}
    with actors.Site(params["name"], connect=connect, **options) as site:
        site.wait_for(OWNER, timeout=30)
        link.send(ready=True)
        link.recv()
        start = time.monotonic()
        path = download(site, OWNER, params["rid"], dest_dir=params["dest_dir"],
                        window_chunks=params["window"], chunk_size=params["chunk_size"],
                        request_timeout=30.0, secure=bool(options)).path
        end = time.monotonic()
        size = os.path.getsize(path)
        os.unlink(path)
        link.send(start=start, end=end, bytes=size)
        link.wait_quit()
