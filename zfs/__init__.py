"""zfs: move large files between sites over ZeroMQ, never holding a whole file in memory.

Push a file to sites at once (all get it, or none)::

    zfs.register_receiver(target_site, channel="models", topic="v1", dest_dir="inbox")
    result = zfs.push_file(site, ["alice", "bob"], "model.bin", channel="models", topic="v1")

Share files under RIDs for recipients to pull at their own pace::

    tx = zfs.share(owner_site, timeout=300)
    rid = tx.add_file("model.bin")
    result = zfs.download(recipient_site, "owner", rid, "downloads")

Every error is a :class:`ZfsError`; see ``zfs.errors``.
"""

from zfs.errors import (FileChanged, InsecureLink, IntegrityError, SourceMissing,
                        StreamRefused, TransactionExpired, TransferAborted, UnknownReference,
                        UnsafeName, ZfsError)
from zfs.pull.download import download, download_async
from zfs.pull.transaction import Transaction, share
from zfs.push.receiver import register_receiver, unregister_receiver
from zfs.push.sender import push_file, push_file_async
from zfs.results import DownloadResult, Progress, PushResult, ReceivedFile
from zfs.shell import Transfer

__all__ = [
    "DownloadResult", "FileChanged", "InsecureLink", "IntegrityError", "Progress",
    "PushResult", "ReceivedFile", "SourceMissing", "StreamRefused", "Transaction",
    "TransactionExpired", "Transfer", "TransferAborted", "UnknownReference", "UnsafeName",
    "ZfsError", "download", "download_async", "push_file", "push_file_async",
    "register_receiver", "share", "unregister_receiver",
]
