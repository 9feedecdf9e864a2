"""Push a file from one site to another with zfs: the app code is ten lines.

Both sites live in this process so the example runs anywhere; in real use each is its
own process, often on its own machine (the receiver could just as well be
``zfs-stream site --name receiver --bind tcp://0.0.0.0:5555 --receive reports/daily``).
Run: ``python examples/push_example.py``.
"""

import os
import tempfile

import actors
from zfs import push_file, register_receiver

with tempfile.TemporaryDirectory() as tmp:
    source = os.path.join(tmp, "report.bin")
    with open(source, "wb") as f:
        f.write(os.urandom(5 << 20))  # a 5 MiB file to send
    inbox = os.path.join(tmp, "inbox")
    os.mkdir(inbox)

    # The receiving side: accept files pushed on channel "reports", topic "daily".
    with actors.Site("receiver", bind="tcp://127.0.0.1:0") as receiver:
        register_receiver(receiver, channel="reports", topic="daily", dest_dir=inbox,
                          on_done=lambda got: print(f"receiver: {got.name}, {got.size} bytes "
                                                    f"from {got.sender_site}"))
        # The sending side: connect, wait for the peer, push (returns once it is stored).
        with actors.Site("sender", connect={"receiver": receiver.endpoint}) as sender:
            sender.wait_for("receiver")
            result = push_file(sender, ["receiver"], source, channel="reports", topic="daily")
            print(f"sender: pushed {result.name}, {result.size} bytes in {result.seconds:.3f} s")
