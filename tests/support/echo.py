"""Small actors that tests spawn in other processes."""

from __future__ import annotations

from typing import Any

import actors


class Echo(actors.Actor):
    """Answers an ask with what it got, who sent it, and its payload's sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "raise":
            raise ValueError("asked to raise")
        return {"got": message, "sender": self.sender,
                "payload": [len(frame) for frame in self.payload]}
