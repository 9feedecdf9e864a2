"""zfs: move large files between sites over ZeroMQ, never holding a whole file in memory.

Push a file to sites at once (all get it, or none)::

    zfs.register_receiver(target_site, channel="models", topic="v1", dest_dir="inbox")
    result = zfs.push_file(site, ["alice", "bob"], "model.bin", channel="models", topic="v1")

Share files under RIDs for recipients to pull at their own pace::

    tx = zfs.share(owner_site, timeout=300)
    rid = tx.add_file("model.bin")
    result = zfs.download(recipient_site, "owner", rid, "downloads")

Folders travel whole, skipping what is already there::

    result = zfs.push_tree(site, ["alice", "bob"], "checkpoint/", channel="models")
    rid = tx.add_tree("checkpoint/")          # zfs.download(...) fetches the tree

Every error is a :class:`ZfsError`; see ``zfs.errors``.
"""

from zfs.errors import (FileChanged, InsecureLink, IntegrityError, SourceMissing,
                        StreamRefused, TransactionExpired, TransferAborted, UnknownReference,
                        UnsafeName, UnsafeTree, ZfsError)
from zfs.pull.calls import download, download_async
from zfs.pull.transaction import Transaction, share
from zfs.push.receiver import register_receiver, unregister_receiver
from zfs.push.sender import push_file, push_file_async
from zfs.push.tree.calls import push_tree, push_tree_async
from zfs.results import (DownloadResult, Progress, PushResult, ReceivedFile, ReceivedTree,
                         TreeDownloadResult, TreePushResult)
from zfs.shell import Transfer

__all__ = [
    "DownloadResult", "FileChanged", "InsecureLink", "IntegrityError", "Progress",
    "PushResult", "ReceivedFile", "ReceivedTree", "SourceMissing", "StreamRefused",
    "Transaction", "TransactionExpired", "Transfer", "TransferAborted", "TreeDownloadResult",
    "TreePushResult", "UnknownReference", "UnsafeName", "UnsafeTree", "ZfsError", "download",
    "download_async", "push_file", "push_file_async", "push_tree", "push_tree_async",
    "register_receiver", "share", "unregister_receiver",
]
