"""An asyncio facade: ``await`` a push, a download, a tell or an ask without blocking the loop.

Same names and arguments as the synchronous API (:func:`zfs.push.push_file`,
:func:`zfs.pull.download`, ``Site.tell``, ``Site.ask``). The work happens where it
always does, in the site's threads and actors; this module only turns the
``concurrent.futures.Future`` those calls return into something a coroutine awaits.
Even starting a call may briefly wait (opening a file, a full send queue under
backpressure), so every call into the site is made on the loop's default executor,
never on the loop's own thread.

Cancelling the awaiting task stops waiting; a transfer already under way runs to its
end (or its own timeout) in the background.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from zfs import pull, push

T = TypeVar("T")

__all__ = ["ask", "download", "push_file", "tell"]


async def _off_loop(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a call that may block briefly on the default executor."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(call, *args, **kwargs))


async def _settle(start: Callable[..., Future[T]], *args: Any, **kwargs: Any) -> T:
    """Start a call that returns a concurrent future, then await that future."""
    future = await _off_loop(start, *args, **kwargs)
    return await asyncio.wrap_future(future)


async def push_file(site: Any, targets: str | Sequence[str], source: Any,
                    **kwargs: Any) -> push.PushResult:
    """Push ``source`` to ``targets``; see :func:`zfs.push.push_file` for the arguments.

    Raises:
        The errors of :func:`zfs.push.push_file` (TransferAborted naming the site, ...).
    """
    return await _settle(push.push_file_async, site, targets, source, **kwargs)


async def download(site: Any, owner: str, rid: str, location: str | None = None,
                   **kwargs: Any) -> str:
    """Download ``rid`` from ``owner`` into ``location``; return the final path.

    See :func:`zfs.pull.download` for the keyword arguments and errors.
    """
    return await _settle(pull.download_async, site, owner, rid, location, **kwargs)


async def tell(site: Any, address: str, message: Any, payload: Sequence[Any] = ()) -> None:
    """Send ``message`` to the actor at ``address`` without waiting for an answer.

    Two tells awaited one after the other arrive in that order; tells started
    concurrently (``gather``) may not.
    """
    await _off_loop(site.tell, address, message, payload=payload)


async def ask(site: Any, address: str, message: Any, *, timeout: float | None = None,
              payload: Sequence[Any] = ()) -> Any:
    """Send ``message`` to the actor at ``address`` and return its answer.

    Raises:
        The errors of ``Site.ask``: AskTimeout after ``timeout`` seconds, ActorError,
        PeerLost, UnknownSite, UnknownActor...
    """
    return await _settle(site.ask, address, message, timeout=timeout, block=False,
                         payload=payload)
