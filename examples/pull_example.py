"""Share a file by RID and download it with zfs: the app code is ten lines.

Both sites live in this process so the example runs anywhere; in real use the owner
and each recipient are their own processes, and the RID travels by any means you like
(a message, a database, a chat). Run: ``python examples/pull_example.py``.
"""

import os
import tempfile

import actors
from zfs import download, share

with tempfile.TemporaryDirectory() as tmp:
    source = os.path.join(tmp, "model.bin")
    with open(source, "wb") as f:
        f.write(os.urandom(5 << 20))  # a 5 MiB file to share

    # The owner: share the file in a transaction that ends after 30 s without downloads.
    with actors.Site("owner", bind="tcp://127.0.0.1:0") as owner:
        tx = share(owner, timeout=30.0)
        rid = tx.add_file(source, on_downloaded=lambda rid, site, status, name:
                          print(f"owner: {name} to {site}: {status}"))
        # A recipient: connect to the owner and download by RID, at its own pace.
        with actors.Site("recipient", connect={"owner": owner.endpoint}) as recipient:
            recipient.wait_for("owner")
            path = download(recipient, "owner", rid, dest_dir=os.path.join(tmp, "downloads")).path
            print(f"recipient: downloaded {os.path.basename(path)}, {os.path.getsize(path)} bytes")
        tx.close()
