"""The pull protocol, as two pure cores: the owner's book of shares and one download.

No I/O, clocks or threads in either: events are method calls named for what happened,
time is the ``now`` argument (monotonic seconds), and the answers are small frozen
commands that the actor shells carry out. The code lives in one module per idea; this
one gathers their names, so ``from zfs.protocol.pull import ...`` keeps working:

- :mod:`zfs.protocol.pull_errors`: :class:`Refusal`, :class:`LocalProtocolError`.
- :mod:`zfs.protocol.pull_inflight`: :class:`InFlight`, the owner's budget of chunk
  bytes in flight.
- :mod:`zfs.protocol.pull_owner`: :class:`Shares` (transactions and their files), its
  states and the commands it answers with.
- :mod:`zfs.protocol.pull_download`: :class:`Download` (one RID), its states, failures
  and commands.
"""

from __future__ import annotations

from zfs.protocol.pull_download import (  # noqa: F401 - re-exported
    DL_TRANSITIONS, Commit, DigestPrefix, DlState, Download, DownloadCommand, Failure, Finish,
    OpenPartial, RequestChunk, ReportMark, RequestDigest, RequestInfo, RequestPrefix, StartOver,
    WriteChunk)
from zfs.protocol.pull_errors import LocalProtocolError, Refusal  # noqa: F401 - re-exported
from zfs.protocol.pull_inflight import InFlight  # noqa: F401 - re-exported
from zfs.protocol.pull_owner import (  # noqa: F401 - re-exported
    TX_TRANSITIONS, Downloaded, OwnerCommand, Refuse, Released, SendChunk, SendDigest,
    SendInfo, SendPrefixDigest, Shares, Status, TimedOut, TxState)
