"""Our side of the push benchmark: a sender site and receiver sites, one process each.

Each receiver registers for the benchmark's channel/topic with its own destination
folder and reports the monotonic time its completion callback ran; the sender pushes
the file to all of them with :func:`zfs.push_file` when the parent says go.
With ``"keys"`` in the params (``--curve``) every site speaks CURVE with the keypairs
in that folder and the sender pushes with ``secure=True``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import actors
from zfs import ReceivedFile, push_file, register_receiver

from benchmarks.curve import site_options
from benchmarks.worker import Link

CHANNEL = TOPIC = "bench"


def receiver(params: dict[str, Any], link: Link) -> None:
    """Receive one file, report when it was complete, delete it, wait for quit."""
    done = threading.Event()
    got: dict[str, Any] = {}

    def on_done(received: ReceivedFile) -> None:
        got.update(done=time.monotonic(), file=received)
        done.set()

    with actors.Site(params["name"], bind="tcp://127.0.0.1:0", connect=params.get("connect"),
                     **site_options(params, params["name"])) as site:
        register_receiver(site, channel=CHANNEL, topic=TOPIC, dest_dir=params["dest_dir"],
                          on_done=on_done)
        link.send(endpoint=site.endpoint)
        if not done.wait(params["timeout"]):
            raise TimeoutError(f"no file within {params['timeout']:.0f} s")
        received: ReceivedFile = got["file"]
        path = Path(received.path)
        if path.is_dir():
            path = path / received.name
        size = path.stat().st_size
        os.unlink(path)
        if size != received.size:
            raise RuntimeError(f"on_done said {received.size} bytes, the file has {size}")
        link.send(done=got["done"], bytes=size)
        link.wait_quit()


def sender(params: dict[str, Any], link: Link) -> None:
    """Connect to every receiver (or to the sites of "connect", which reach the receivers
    named in "to": a relay); on "go", push the file to all of them."""
    targets: dict[str, str] = params["targets"]
    to: list[str] = params.get("to") or list(targets)
    options = site_options(params, "sender")
    with actors.Site("sender", connect=targets, **options) as site:
        for name in to:
            site.wait_for(name, timeout=30)
        link.send(ready=True)
        link.recv()
        start = time.monotonic()
        result = push_file(site, to, params["path"], channel=CHANNEL, topic=TOPIC,
                           chunk_size=params["chunk_size"], window_chunks=params["window"],
                           chunk_timeout=60.0, secure=bool(options),
                           swarm=params.get("swarm", False))
        end = time.monotonic()
        link.send(start=start, end=end, size=result.size)
        link.wait_quit()
