"""actors: a ZeroMQ actor runtime. Sites host pykka actors and link them across processes.

Knows nothing about files; ``zfs`` builds file streaming on it.
"""

from actors.actor import Actor
from actors.errors import (ActorError, ActorsError, AskTimeout, CodecError, MailboxFull,
                           MessageTooLarge, PeerLost, PeerRefused, SiteClosed, UnknownActor,
                           UnknownSite, WaitTimeout)
from actors.events import PeerDown, PeerUp
from actors.peerstates import PeerState
from actors.refs import LocalRef, Ref
from actors.site import Site

__all__ = [
    "Actor", "ActorError", "ActorsError", "AskTimeout", "CodecError", "LocalRef",
    "MailboxFull", "MessageTooLarge", "PeerDown", "PeerLost", "PeerRefused", "PeerState", "PeerUp", "Ref", "Site", "SiteClosed",
    "UnknownActor", "UnknownSite", "WaitTimeout",
]
