"""The push protocol: one sender streams one file to several targets in lock-step.

Pure cores, in the style of h11: inputs are calls named for what happened, outputs
are lists of small frozen commands that the actor shells carry out (send, read,
write, commit, discard). No I/O, no clocks: ``now`` is monotonic seconds passed in.
File bytes never pass through here; a command names a chunk by offset and length.

Wire exchange, per target (all targets see the same sequence)::

    sender                         receiver
    open(name, size?, chunk_size) ->           (refuse | accept)
    chunk(offset) + bytes        ->  ... up to window_chunks un-acked
                                 <-  ack(received)             cumulative
    end(size, digest)            ->            commit: size + digest, rename
                                 <-  done | error(kind, reason)
    abort(reason)                ->            discard the partial file

Commit is per target: each renames its file once its own size and digest check pass.
If another target fails after that, the send fails, but a target that already
committed keeps its (complete, checked) file; nothing incomplete is ever committed.

Where things live (every name stays importable from here):

- :mod:`zfs.protocol.push_sender`: :class:`PushSender`, its states and commands.
- :mod:`zfs.protocol.push_receiver`: :class:`PushReceiver`, :class:`Limits`, its
  states and commands.
- :mod:`zfs.protocol.push_failures`: the failure kinds and :class:`ProtocolMisuse`.
"""

from __future__ import annotations

from zfs.protocol.push_failures import (  # noqa: F401 - re-exported
    EXPIRED, INTEGRITY, IO, LOST, PROTOCOL, REFUSED, SOURCE, TIMEOUT, ProtocolMisuse)
from zfs.protocol.push_receiver import (  # noqa: F401 - re-exported
    STREAM_TRANSITIONS, Accept, CommitFile, CreateFile, Discard, Key, Limits, PushReceiver,
    ReceiverCommand, Refuse, SendAck, SendDone, SendError, StreamState, WriteChunk)
from zfs.protocol.push_sender import (  # noqa: F401 - re-exported
    SENDER_TRANSITIONS, Finished, Progressed, PushSender, ReadChunk, SendAbort, SendChunk,
    SendEnd, SenderCommand, SenderState, SendOpen)
