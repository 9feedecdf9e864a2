"""The app's calls that push a folder: :func:`push_tree` and :func:`push_tree_async`.

Each checks its arguments and walks the folder, then spawns a
:class:`~zfs.push.tree.sender.TreeSenderActor` for the push and returns its handle.
"""

from __future__ import annotations

import os
import secrets
from typing import Any, Callable, Optional, Sequence, Union

import actors
from zfs.files import Digest, check_name
from zfs.pace import check_rate
from zfs.protocol.errors import LocalProtocolError
from zfs.protocol.push.tree import sender as core
from zfs.push.tree.sender import Begin, TreeSenderActor, TreeSpec
from zfs.results import Progress, TreePushResult
from zfs.shell import Transfer, check_secure
from zfs.supervisor import ensure_supervisor
from zfs.tree.walk import walk


def transfer_key(site: actors.Site, root: str, name: str, channel: str, topic: str) -> str:
    """The key of a push of ``root`` as ``name``: the same for the same push started again."""
    identity = Digest()
    identity.update(f"{site.name}\0{root}\0{name}\0{channel}\0{topic}".encode(
        "utf-8", "surrogateescape"))
    return identity.hexdigest()


def push_tree_async(site: actors.Site, targets: Union[str, Sequence[str]], folder: str, *,
                    channel: str = "default", topic: str = "default",
                    name: Optional[str] = None, context: Any = None,
                    chunk_size: int = 1 << 20, window_chunks: int = 8,
                    chunk_timeout: float = 30.0,
                    on_progress: Optional[Callable[[Progress], Any]] = None,
                    secure: bool = False, no_clobber: bool = False,
                    check_existing: bool = True,
                    bwlimit: Optional[float] = None) -> Transfer[TreePushResult]:
    """Start pushing the folder ``folder`` to ``targets``; the handle gives the outcome.

    Args:
        site: the sending :class:`actors.Site`.
        targets: site names (one name or a list); every one must commit the tree.
        folder: the folder to send; every folder, file and link under it travels, with
            relative paths, modes and times (links only if they stay inside it).
        name: the tree's name at the targets (default: the folder's own name).
        context: app data (msgpack-able) handed to the receivers' ``on_done``.
        on_progress: called with a tree :class:`Progress` per target (bytes, files
            done, the current file), at most ~10 times a second.
        no_clobber: a target where ``name`` exists refuses the tree.
        check_existing: files a target already holds with the same size and digest are
            not sent (off: only what an interrupted push of the same tree left is kept).
        bwlimit: bytes per second this push may send, all targets together (None: no cap).

    Returns:
        A :class:`~zfs.shell.Transfer` of :class:`TreePushResult`; on failure it raises
        :class:`TransferAborted` (or a subclass) naming the culprit site. What the
        targets verified stays there: the same push started again resumes.

    Raises:
        SourceMissing: ``folder`` is not a readable folder.
        UnsafeTree: a link in it leads out of it, or a name cannot travel.
        UnsafeName: ``name`` is not a plain name.
        InsecureLink, ValueError: as for :func:`zfs.push_file`.
    """
    targets = [targets] if isinstance(targets, str) else list(targets)
    check_secure(site, secure)
    if chunk_size > site.options.max_message_size:
        raise ValueError(f"chunk_size {chunk_size} is over the site's max_message_size")
    check_rate(bwlimit)
    walked = walk(folder)
    tree_name = check_name(name if name is not None else
                           os.path.basename(walked.root.rstrip(os.sep)))
    try:
        sender = core.TreeSender(targets, walked.manifest.sizes(), chunk_size=chunk_size,
                                 window_chunks=window_chunks, chunk_timeout=chunk_timeout)
    except LocalProtocolError as err:
        raise ValueError(str(err)) from None
    sid = secrets.token_hex(16)
    spec = TreeSpec(sid, tree_name, transfer_key(site, walked.root, tree_name, channel, topic),
                     channel, topic, context, walked, no_clobber, check_existing, on_progress,
                     bwlimit)
    ensure_supervisor(site)
    transfer: Transfer[TreePushResult] = Transfer()
    return transfer.start(site, TreeSenderActor, f"zfs.send-tree.{sid[:16]}", (spec, sender),
                          Begin())


def push_tree(site: actors.Site, targets: Union[str, Sequence[str]], folder: str,
              **options: Any) -> TreePushResult:
    """Push the folder ``folder`` to ``targets`` and wait until every one committed it.

    Same arguments and errors as :func:`push_tree_async`. Do not call it from an
    actor's thread: it blocks.
    """
    return push_tree_async(site, targets, folder, **options).result()
