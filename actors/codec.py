"""The wire format: one small msgpack header frame, then raw payload frames.

A message on the wire is a ZeroMQ multipart message::

    [header, payload_0, payload_1, ...]

The header is a msgpack array ``[version, kind, to, sender, corr, body]``:

- ``version``: :data:`PROTOCOL_VERSION`; any other is refused.
- ``kind``: a :class:`Kind`.
- ``to``: the receiving actor's name ("" for site-level kinds).
- ``sender``: the sending address, ``"site/actor"``, or ``"site"`` for app code.
- ``corr``: the correlation id tying an ASK to its REPLY or FAIL (0 otherwise).
- ``body``: the app's message, or the kind's own small fields.

Bulk bytes never pass through msgpack: they ride as their own frames, so a 1 MiB
chunk is never copied into or out of a serialised buffer.

Several small messages to one linked peer that wait to be sent at the same moment
travel as one BUNDLE: its body is the array of their headers, each exactly as it
would have been sent alone, so a burst of tells costs the receiver one read and one
decode instead of one per message. Only TELL, ASK, REPLY and FAIL without payload are
bundled, never a bundle in a bundle.

A message for a site the sender is not linked to travels as ROUTED: its body is
``[dest, origin, hops, inner]``, ``inner`` being exactly the header the origin would
have sent directly, and its payload frames follow untouched, so a relay decodes only
this small wrapper and hands the frames on as it received them (``actors.io.relay``).
"""

from __future__ import annotations

import enum
import threading
from typing import Any, NamedTuple

import msgpack

from actors.errors import CodecError, VersionMismatch

PROTOCOL_VERSION = 4  # 2: FAIL says who raised (by_actor); 3: ROUTED and ROUTES; 4: BUNDLE

#: A header larger than this is refused before it is unpacked.
MAX_HEADER_SIZE = 64 * 1024

_MAX_CORR = 2**63 - 1


class Kind(enum.IntEnum):
    """What a message is for."""

    HELLO = 1  # body: [site_name, incarnation]; first message on a connection
    WELCOME = 2  # body: [site_name, incarnation]; the answer to HELLO
    REFUSE = 3  # body: [code, text]; the link is not usable (kind 3 in every version)
    TELL = 4  # body: the app's message
    ASK = 5  # body: the app's message; answered by REPLY or FAIL with same corr
    REPLY = 6  # body: the answer
    FAIL = 7  # body: [error_kind, text, by_actor]: the answering actor raised it, or the runtime
    PING = 8  # body: None; liveness
    BYE = 9  # body: reason text; the sender is stopping
    ROUTED = 10  # body: [dest, origin, hops, inner header]; payload: the inner's, untouched
    ROUTES = 11  # body: None; payload: one msgpack frame, [{site: hops}, {site: why withdrawn}]
    BUNDLE = 12  # body: [header, ...]: TELL, ASK, REPLY, FAIL without payload, sent as one


class Header(NamedTuple):
    """The decoded first frame of a message (a named tuple: it is made per message)."""

    kind: Kind
    to: str = ""
    sender: str = ""
    corr: int = 0
    body: Any = None


class Routed(NamedTuple):
    """The body of a ROUTED message: for ``dest``, from ``origin``, ``hops`` links so far."""

    dest: str
    origin: str
    hops: int
    inner: bytes


def routed(body: Any) -> Routed | None:
    """The :class:`Routed` a ROUTED body holds, or None if it is malformed."""
    if (type(body) is list and len(body) == 4 and type(body[0]) is str
            and type(body[1]) is str and type(body[2]) is int and type(body[3]) is bytes):
        return _new(Routed, body)
    return None


class _ThreadPacker(threading.local):
    """One msgpack Packer per thread: ``msgpack.packb`` builds a new one per call,
    which costs more than packing a small header; a Packer is not thread-safe."""

    packer: msgpack.Packer | None = None


_packers = _ThreadPacker()


def _packer() -> msgpack.Packer:
    packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    return packer


def encode(kind: Kind, to: str = "", sender: str = "", corr: int = 0, body: Any = None) -> bytes:
    """Encode a header frame.

    Raises:
        CodecError: the body holds a value msgpack cannot encode.
    """
    packer = _packers.packer or _packer()
    try:
        data: bytes = packer.pack([PROTOCOL_VERSION, int(kind), to, sender, corr, body])
    except (TypeError, ValueError, OverflowError) as err:
        raise CodecError(f"cannot encode message: {err}") from err
    return data


def encode_header(header: Header) -> bytes:
    """Encode a :class:`Header` (a convenience for tests and tools)."""
    return encode(header.kind, header.to, header.sender, header.corr, header.body)


def decode(data: bytes | memoryview) -> Header:
    """Decode and check a header frame received from a peer.

    Raises:
        VersionMismatch: the peer speaks another protocol version.
        CodecError: anything else wrong with the bytes.
    """
    if len(data) > MAX_HEADER_SIZE:
        raise CodecError(f"header of {len(data)} bytes is over {MAX_HEADER_SIZE}")
    try:
        # msgpack >= 1.0 defaults: raw=False, use_list=True, strict_map_key=True, timestamp=0.
        fields = msgpack.unpackb(data, ext_hook=_refuse_ext)
    except CodecError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as err:
        raise CodecError(f"undecodable header: {err}") from err
    except RecursionError as err:  # belt and braces: msgpack's C stack limit comes first
        raise CodecError("header nested too deeply") from err
    return _check(fields)


#: The kinds that carry the app's messages and their answers, which a site hands to
#: its actors and asks; the rest are the link's own. Only these may be bundled or routed.
APP_KINDS = frozenset((Kind.TELL, Kind.ASK, Kind.REPLY, Kind.FAIL))


def _bundle_prefix() -> bytes:
    """A BUNDLE header up to its body: an array of six, the first five fields."""
    packer = msgpack.Packer(use_bin_type=True)
    fields: list[bytes] = [packer.pack_array_header(6)]
    fields += [packer.pack(field) for field in (PROTOCOL_VERSION, int(Kind.BUNDLE), "", "", 0)]
    return b"".join(fields)


_BUNDLE_PREFIX = _bundle_prefix()


def encode_bundle(headers: list[bytes]) -> bytes:
    """One BUNDLE header carrying ``headers`` (encoded headers of kinds in
    :data:`APP_KINDS`), built from their bytes without decoding them."""
    packer = _packers.packer or _packer()
    count: bytes = packer.pack_array_header(len(headers))
    return b"".join((_BUNDLE_PREFIX, count, *headers))


def unbundle(body: Any) -> list[Header]:
    """The headers a BUNDLE's body holds, each checked as one sent alone.

    Raises:
        CodecError: the body is not a non-empty array of headers of kinds in
            :data:`APP_KINDS`; nothing of it is to be delivered.
    """
    if type(body) is not list or not body:
        raise CodecError("a bundle's body is not a non-empty array of headers")
    headers = []
    for fields in body:
        try:
            header = _check(fields)
        except VersionMismatch as err:
            raise CodecError(f"a bundled header of another version: {err}") from err
        if header.kind not in APP_KINDS:
            raise CodecError(f"a {header.kind.name} may not be bundled")
        headers.append(header)
    return headers


def _refuse_ext(code: int, data: bytes) -> Any:
    """Messages are plain msgpack values: an extension type is not one of ours."""
    raise CodecError(f"msgpack extension type {code} is not allowed")


def _check(fields: Any) -> Header:
    if type(fields) is not list or len(fields) != 6:
        raise CodecError("header is not an array of six fields")
    version, kind, to, sender, corr, body = fields
    if version != PROTOCOL_VERSION:
        raise VersionMismatch(version, kind, body)
    kind_member = _KINDS.get(kind) if type(kind) is int else None
    if kind_member is None:
        raise CodecError(f"unknown message kind {kind!r}")
    if type(to) is not str or type(sender) is not str:
        raise CodecError("header addresses must be strings")
    if type(corr) is not int or not 0 <= corr <= _MAX_CORR:
        raise CodecError("bad correlation id")
    return _new(Header, (kind_member, to, sender, corr, body))


#: Builds a Header without the Python-level ``__new__`` a named tuple runs per message.
_new = tuple.__new__

#: Kind by wire value; a dict lookup, since calling the enum costs more per message.
_KINDS = {int(k): k for k in Kind}
