"""Push: stream one file to one or more sites in lock-step.

Two thin actor shells around the cores of :mod:`zfs.protocol.push`:

- :class:`SenderActor` (``"zfs.send.<hex>"``, one per send) reads each chunk once and
  tells it to every target as one raw payload frame (the same bytes object to each),
  computing the digest as it reads; a window of un-acked chunks bounds its memory.
- :class:`ReceiverActor` (``"zfs.receiver"``, one per site) holds every inbound stream,
  keyed by (sender address, stream id), writes chunks into a
  :class:`~zfs.files.PartialFile`, acks each by a tiny tell, checks and renames at the end.

Wire messages are small msgpack dicts with an ``op`` and the stream id ``sid``: to the
receiver ``open``, ``chunk`` (+ payload), ``end``, ``abort``; back ``accept``,
``refuse``, ``ack``, ``done``, ``error``.

Where things live (every public name stays importable from here):

- :mod:`zfs.push_sender`: :func:`push_file`, :func:`push_file_async`, :class:`SenderActor`.
- :mod:`zfs.push_receiver`: :func:`register_receiver`, :func:`unregister_receiver`,
  :class:`ReceiverActor`.
- :mod:`zfs.push_common`: :class:`Progress`, :class:`PushResult`, :class:`ReceivedFile`,
  the receiver's actor name ``RECEIVER``.
- :mod:`zfs.push_source`: opening and reading what a push sends (a path or a stream).
"""

from __future__ import annotations

from zfs.push_common import (  # noqa: F401 - re-exported
    RECEIVER, Progress, PushResult, ReceivedFile)
from zfs.push_receiver import (  # noqa: F401 - re-exported
    ReceiverActor, register_receiver, unregister_receiver)
from zfs.push_sender import (  # noqa: F401 - re-exported
    PROGRESS_INTERVAL, SenderActor, push_file, push_file_async)
from zfs.push_source import Source  # noqa: F401 - re-exported
