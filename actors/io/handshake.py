"""The hello/welcome/refuse handshake that opens a link between two sites.

The side that connects (a DEALER) says HELLO ``[name, incarnation]`` on every
connect; the side that accepted (the ROUTER) answers WELCOME ``[name, incarnation]``
or REFUSE ``[code, text]``. These are the rules of each step, without sockets: the
I/O thread (``actors.io.thread``) applies them and does the sending.
"""

from __future__ import annotations

from typing import Any

from actors import codec
from actors.addresses import valid_site_name
from actors.codec import Kind
from actors.options import SiteOptions

#: REFUSE codes; "hello" means "say hello again", every other code is final.
REFUSE_HELLO = "hello"
REFUSE_VERSION = "version"
REFUSE_NAME = "name"
REFUSE_BUSY = "busy"  # the name is connected: retried, as that connection may be dead
REFUSE_AUTH = "auth"
REFUSE_SECURITY = "security"  # one side speaks CURVE, the other not (told by ZeroMQ)


def hello(site_name: str, incarnation: str) -> bytes:
    """The HELLO a connecting site sends."""
    return codec.encode(Kind.HELLO, body=[site_name, incarnation])


def welcome(site_name: str, incarnation: str) -> bytes:
    """The WELCOME that accepts a hello."""
    return codec.encode(Kind.WELCOME, body=[site_name, incarnation])


def refuse(code: str, text: str) -> bytes:
    """The REFUSE that turns a peer away; ``code`` is one of the REFUSE_* codes."""
    return codec.encode(Kind.REFUSE, body=[code, text])


def hello_identity(body: Any) -> tuple[str, str] | None:
    """The ``(name, incarnation)`` a hello claims, or None if it is malformed."""
    if not (isinstance(body, list) and len(body) == 2
            and all(isinstance(part, str) for part in body) and valid_site_name(body[0])):
        return None
    return body[0], body[1]


def hello_refusal(site_name: str, options: SiteOptions, known: Any, name: str,
                  incarnation: str, routing_id: bytes, head: Any) -> tuple[str, str]:
    """The refusal code and reason for a hello, or ("", "") to welcome it.

    ``known`` is what this site knows of a peer of that name (an ``actors.io.peers``
    record), or None. ``head`` is the hello's header frame (a ``zmq.Frame``, which
    tells the connection's key), or None for a hello again on a connection that said
    hello under this name before: its key was checked then.
    """
    if name == site_name:
        return REFUSE_NAME, f"{name!r} is this site's own name"
    if options.curve is not None and head is not None:
        refusal = options.curve.check_name(name, head)
        if refusal:
            return REFUSE_NAME, refusal
    if (known is not None and known.up and known.routing_id not in (None, routing_id)
            and known.incarnation != incarnation):
        return REFUSE_BUSY, f"a site named {name!r} is already connected"
    return "", ""


def welcome_refusal(expected: str, body: Any) -> str:
    """Why a WELCOME does not come from the site ``expected`` ("" when it does)."""
    named = body[0] if isinstance(body, list) and body else None
    if named != expected:
        return f"the site at that endpoint is {named!r}"
    return ""


def refusal(body: Any) -> tuple[Any, Any]:
    """The ``(code, text)`` of a REFUSE body, tolerating a malformed one."""
    code, text = (body + ["", ""])[:2] if isinstance(body, list) else ("", str(body))
    return code, text
