"""Calling the app's callbacks from inside an actor.

A push or pull calls app code (progress, done, timeout callbacks) on its actor's
thread; an exception there must be logged, never allowed to stop the actor and with it
a transfer other sites depend on.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

log = logging.getLogger(__name__)


def run_callback(callback: Callable[..., Any], *args: Any) -> None:
    """Run an app callback; its errors are logged, never allowed to break a transfer."""
    try:
        callback(*args)
    except Exception:  # noqa: BLE001 - app code must not kill the actor
        log.exception("callback %r failed", callback)
