"""An asyncio facade: ``await`` a push, a download, a tell or an ask without blocking the loop.

Same names and arguments as the synchronous API (:func:`zfs.push_file`,
:func:`zfs.push_tree`, :func:`zfs.download`, ``Site.tell``, ``Site.ask``). The work happens where it always
does, in the site's threads and actors; this module only turns the future those calls
return into something a coroutine awaits. Even starting a call may briefly wait
(opening a file, a full send queue under backpressure), so every call into the site is
made on the loop's default executor, never on the loop's own thread.

Cancelling the task that awaits a push or a download aborts that transfer (its
targets discard their partial files; a download keeps nothing it did not verify).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

import actors
from zfs.pull.calls import download_async
from zfs.push.sender import push_file_async
from zfs.push.tree.calls import push_tree_async
from zfs.results import DownloadResult, PushResult, TreeDownloadResult, TreePushResult
from zfs.shell import Transfer

T = TypeVar("T")

__all__ = ["ask", "download", "push_file", "push_tree", "tell"]


async def _off_loop(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a call that may block briefly on the default executor."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(call, *args, **kwargs))


async def _settle(start: Callable[..., Future[T]], *args: Any, **kwargs: Any) -> T:
    """Start a call that returns a concurrent future, then await that future."""
    future = await _off_loop(start, *args, **kwargs)
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        if isinstance(future, Transfer):
            future.abort()
        raise


async def push_file(site: actors.Site, targets: str | Sequence[str], source: Any,
                    **kwargs: Any) -> PushResult:
    """Push ``source`` to ``targets``; see :func:`zfs.push_file` for the arguments.

    Raises:
        The errors of :func:`zfs.push_file` (TransferAborted naming the site, ...).
    """
    return await _settle(push_file_async, site, targets, source, **kwargs)


async def push_tree(site: actors.Site, targets: str | Sequence[str], folder: str,
                    **kwargs: Any) -> TreePushResult:
    """Push the folder ``folder`` to ``targets``; see :func:`zfs.push_tree`.

    Raises:
        The errors of :func:`zfs.push_tree` (TransferAborted naming the site, ...).
    """
    return await _settle(push_tree_async, site, targets, folder, **kwargs)


async def download(site: actors.Site, owner: str, rid: str, dest_dir: str | None = None,
                   **kwargs: Any) -> DownloadResult | TreeDownloadResult:
    """Download ``rid`` from ``owner`` into the folder ``dest_dir``.

    See :func:`zfs.download` for the keyword arguments, the result and the errors.
    """
    return await _settle(download_async, site, owner, rid, dest_dir, **kwargs)


async def tell(site: actors.Site, address: str, message: Any, payload: Sequence[Any] = ()) -> None:
    """Send ``message`` to the actor at ``address`` without waiting for an answer.

    Two tells awaited one after the other arrive in that order; tells started
    concurrently (``gather``) may not.
    """
    await _off_loop(site.tell, address, message, payload=payload)


async def ask(site: actors.Site, address: str, message: Any, *, timeout: float | None = None,
              payload: Sequence[Any] = ()) -> Any:
    """Send ``message`` to the actor at ``address`` and return its answer.

    Raises:
        The errors of ``Site.ask``: AskTimeout after ``timeout`` seconds, ActorError,
        PeerLost, UnknownSite, UnknownActor...
    """
    return await _settle(site.ask, address, message, timeout=timeout, block=False,
                         payload=payload)
