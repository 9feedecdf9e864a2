"""The relay of the relay benchmark: a site that listens and only forwards, one process.

The sender (or owner) and the receiver (or recipient) both connect to it and to
nothing else (:mod:`benchmarks.push_parties`, :mod:`benchmarks.pull_parties` with
"connect"), so every chunk crosses it (``actors.io.relay``).
"""

from __future__ import annotations

from typing import Any

import actors

from benchmarks.worker import Link

RELAY = "server"


def relay(params: dict[str, Any], link: Link) -> None:
    """Listen, report the endpoint, forward until the parent says quit."""
    with actors.Site(RELAY, bind="tcp://127.0.0.1:0") as site:
        link.send(endpoint=site.endpoint)
        link.wait_quit()
