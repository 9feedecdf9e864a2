"""Pull: an owner shares files by RID; each recipient downloads them at its own pace.

Two thin actor shells around the cores of :mod:`zfs.protocol.pull`, one module per
idea; this one gathers their names, so ``from zfs.pull import ...`` keeps working:

- :mod:`zfs.pull_owner`: :class:`OwnerActor` (``"zfs.owner"``, one per site,
  supervised), which serves chunks and digests to any site that holds a RID, and the
  wire requests it answers.
- :mod:`zfs.pull_transaction`: :func:`share`, :class:`Transaction` and
  :func:`owner_stats`, the app's calls to its site's owner.
- :mod:`zfs.pull_download`: :class:`DownloadActor` (``"zfs.dl.<hex>"``, one per
  download), :func:`download`, :func:`download_async` and :class:`Progress`.
"""

from __future__ import annotations

from zfs.pull_download import (  # noqa: F401 - re-exported
    DownloadActor, Progress, download, download_async)
from zfs.pull_owner import (  # noqa: F401 - re-exported
    MAX_CHUNK_SIZE, MAX_INFLIGHT_BYTES, OWNER, DownloadedCallback, OwnerActor, OwnerState,
    TimeoutCallback)
from zfs.pull_transaction import (  # noqa: F401 - re-exported
    Transaction, owner_stats, share)
