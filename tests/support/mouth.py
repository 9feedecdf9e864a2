"""An actor a test speaks through: it sends whatever bodies the test gives it, as itself,
and records every other message it is sent (what a peer answered)."""

from __future__ import annotations

from typing import Any

import actors


class Mouth(actors.Actor):
    """Sends ``{"to", "body", "payload"}`` as itself; records every other message."""

    def __init__(self) -> None:
        super().__init__()
        self.heard: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, dict) and "to" in message:
            self.site.tell(message["to"], message["body"], payload=message.get("payload", ()))
        elif message == "heard":
            return list(self.heard)
        else:
            self.heard.append(message)
        return None
