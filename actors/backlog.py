"""Payload bytes from peers waiting in an actor's mailbox, and a warning when they pile up.

Mailboxes have no bound (pykka's), and the I/O thread does not stop reading to make
one: ZeroMQ stops reading a connection whose queue is full, its heartbeats then go
unanswered, and the connection drops with what it held (measured on libzmq 4.3.5: a
ROUTER not read for 4 s with 1 s heartbeats lost the link and most of its queue).
So an actor slower than the peers telling it makes its site hold all they sent;
bulk senders keep a window of acked chunks, as zfs push and pull do.

What the site can do is say so, at no cost to the message path: the I/O thread adds
the payload bytes it hands each actor, the actor adds those it has handled (each
counter has one writer, so there is no lock), and a periodic check on the I/O
thread warns once the difference passes ``SiteOptions.backlog_warning``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Backlog:
    """One actor's counts of payload bytes from peers."""

    actor: str           # its name, for the warning
    delivered: int = 0   # written by the site's I/O thread only
    handled: int = 0     # written by the actor's thread only
    warned: bool = False  # the I/O thread's: a warning stands until the actor catches up

    @property
    def waiting(self) -> int:
        """Bytes handed to the actor and not yet handled (read from any thread)."""
        return self.delivered - self.handled


def check(site_name: str, backlogs: dict[Any, Backlog], threshold: int) -> None:
    """Warn of each live actor whose backlog passed ``threshold``; once, until it halves.

    ``backlogs`` maps each actor's ref to its counts; stopped actors are skipped (the
    site forgets them as it spawns others).
    """
    for ref, backlog in tuple(backlogs.items()):
        if not ref.is_alive():
            continue
        waiting = backlog.waiting
        if not backlog.warned and waiting > threshold:
            backlog.warned = True
            log.warning("site %s: actor %s has %d MiB of payload from peers waiting in its "
                        "mailbox: its senders outpace it (send bulk with a window of acks)",
                        site_name, backlog.actor, waiting >> 20)
        elif backlog.warned and waiting <= threshold // 2:
            backlog.warned = False
            log.info("site %s: actor %s caught up with its senders (%d MiB waiting)",
                     site_name, backlog.actor, waiting >> 20)
