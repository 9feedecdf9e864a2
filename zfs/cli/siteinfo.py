"""What a ``site`` says about itself before a push: which channel/topics it receives, with
how much room.

A ``site`` started by this command runs the :class:`SiteInfo` actor (``"zfs-stream"``).
``push`` asks each target first (:func:`check_targets`): a target that does not
receive the push's channel/topic, or lacks the room for the file, fails the command at
once with a line that names what was sent and what the site accepts, and the site
logs the refusal. A target without the actor (a site of the Python API) cannot tell;
the push then goes ahead and the receiver itself refuses what it does not take.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from typing import Any, Optional

import click

import actors
from zfs.cli.settings import format_size

log = logging.getLogger(__name__)

NAME = "zfs-stream"
_ASK_TIMEOUT = 3.0


class SiteInfo(actors.Actor):
    """Answers ``{"push?": [channel, topic, file_name, size]}`` about this site's receivers.

    Args:
        receiving: ``(channel, topic, dest_dir)`` of each ``--receive``.
    """

    def __init__(self, receiving: Sequence[tuple[str, str, str]]) -> None:
        super().__init__()
        self._receiving = {(channel, topic): dest for channel, topic, dest in receiving}

    def on_receive(self, message: Any) -> Any:
        query = message.get("push?") if isinstance(message, dict) else None
        if not (isinstance(query, list) and len(query) == 4
                and all(isinstance(part, str) for part in query[:3])
                and (query[3] is None or type(query[3]) is int)):
            return None                      # not a question of ours: no answer
        channel, topic, name, size = query
        dest = self._receiving.get((channel, topic))
        sender = (self.sender or "?").partition("/")[0]
        accepted = sorted(f"{c}/{t}" for c, t in self._receiving)
        if dest is None:
            log.info("refused %r from %s: no --receive %r here (receiving %s)", name,
                     sender, f"{channel}/{topic}", ", ".join(accepted) or "nothing")
            return {"accepts": False, "receives": accepted}
        try:
            free: Optional[int] = shutil.disk_usage(dest).free
        except OSError:
            free = None
        if isinstance(size, int) and free is not None and size > free:
            log.info("refused %r from %s: %s does not fit in %s (%s free)", name, sender,
                     format_size(size), dest, format_size(free))
        return {"accepts": True, "receives": accepted, "dest": dest, "free": free}


def check_targets(site: actors.Site, targets: Sequence[str], channel: str, topic: str,
                  name: str, size: Optional[int]) -> dict[str, Optional[dict[str, Any]]]:
    """Ask every target whether it takes this push; fail the command if one does not.

    Returns:
        Each target's answer, or None for a target that cannot tell.

    Raises:
        click.ClickException: a target does not receive ``channel/topic``, or has not
            the room for ``size`` bytes.
    """
    answers: dict[str, Optional[dict[str, Any]]] = {}
    for target in targets:
        try:
            answer = site.ask(f"{target}/{NAME}", {"push?": [channel, topic, name, size]},
                              timeout=_ASK_TIMEOUT)
        except actors.ActorsError:
            answer = None            # not a zfs-stream site, or too slow to say
        answers[target] = answer if isinstance(answer, dict) else None
        if answer is None:
            continue
        if not answer.get("accepts"):
            receives = ", ".join(answer.get("receives") or []) or "nothing"
            raise click.ClickException(
                f"{target} does not receive pushes on channel {channel!r}, topic {topic!r} "
                f"(it receives: {receives}); push with --channel/--topic of one of those, "
                f"or start {target} with --receive {channel}/{topic}")
        free = answer.get("free")
        if isinstance(free, int) and size is not None and size > free:
            raise click.ClickException(
                f"{target} has {format_size(free)} free in {answer.get('dest')}; {name} is "
                f"{format_size(size)}")
    return answers
