"""Our side of the folder benchmark: push and pull of a tree, one process per site.

A receiver registers and reports when its ``on_done`` ran (the tree renamed into
place); the sender pushes with :func:`zfs.push_tree` on "go". The owner shares the
folder (``add_tree``) before the clock starts; the recipient downloads it on "go".
Each side counts the files and bytes it ended with, then deletes them (untimed).
"""

from __future__ import annotations

import shutil
import threading
import time
from typing import Any

import actors
from zfs import download, push_tree, register_receiver, share
from zfs.pull.transaction import owner_stats

from benchmarks.rawtar import _measure
from benchmarks.worker import Link

CHANNEL = TOPIC = "bench-tree"
OWNER = "owner"


def receiver(params: dict[str, Any], link: Link) -> None:
    """Receive one tree, report when it was in place, delete it, wait for quit."""
    done = threading.Event()
    got: dict[str, Any] = {}

    def on_done(received: Any) -> None:
        got.update(done=time.monotonic(), tree=received)
        done.set()

    with actors.Site(params["name"], bind="tcp://127.0.0.1:0") as site:
        register_receiver(site, channel=CHANNEL, topic=TOPIC, dest_dir=params["dest_dir"],
                          on_done=on_done)
        link.send(endpoint=site.endpoint)
        if not done.wait(params["timeout"]):
            raise TimeoutError(f"no tree within {params['timeout']:.0f} s")
        size, files = _measure(got["tree"].path)
        link.send(done=got["done"], bytes=size, files=files)
        shutil.rmtree(got["tree"].path, ignore_errors=True)
        link.wait_quit()


def sender(params: dict[str, Any], link: Link) -> None:
    """Connect to every receiver; on "go", push the folder to all of them."""
    targets: dict[str, str] = params["targets"]
    with actors.Site("sender", connect=targets) as site:
        for name in targets:
            site.wait_for(name, timeout=30)
        link.send(ready=True)
        link.recv()
        start = time.monotonic()
        result = push_tree(site, list(targets), params["path"], channel=CHANNEL, topic=TOPIC,
                           chunk_size=params["chunk_size"], window_chunks=params["window"],
                           chunk_timeout=60.0)
        link.send(start=start, end=time.monotonic(), moved=result.bytes_moved)
        link.wait_quit()


def owner(params: dict[str, Any], link: Link) -> None:
    """Share the folder until the parent says quit."""
    with actors.Site(OWNER, bind="tcp://127.0.0.1:0") as site:
        tx = share(site, timeout=params["timeout"])
        rid = tx.add_tree(params["path"])
        while owner_stats(site)["digesting"]:    # digested once, before anyone pulls
            time.sleep(0.05)
        link.send(endpoint=site.endpoint, rid=rid)
        link.wait_quit()
        tx.close()


def recipient(params: dict[str, Any], link: Link) -> None:
    """Connect to the owner; on "go", download the tree, report, delete it."""
    with actors.Site(params["name"], connect={OWNER: params["endpoint"]}) as site:
        site.wait_for(OWNER, timeout=30)
        link.send(ready=True)
        link.recv()
        start = time.monotonic()
        result = download(site, OWNER, params["rid"], dest_dir=params["dest_dir"],
                          window_chunks=params["window"], chunk_size=params["chunk_size"],
                          request_timeout=30.0)
        end = time.monotonic()
        size, files = _measure(result.path)
        link.send(start=start, end=end, bytes=size, files=files)
        shutil.rmtree(result.path, ignore_errors=True)
        link.wait_quit()
