"""The wire codec: round trips, exact bytes per kind, and garbage in."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import codec
from actors.codec import Header, Kind
from actors.errors import CodecError, VersionMismatch

#: Malformed headers below carry the right version, so each fails for its own reason.
V = codec.PROTOCOL_VERSION

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20,
)


@given(kind=st.sampled_from(list(Kind)), to=st.text(max_size=30), sender=st.text(max_size=30),
       corr=st.integers(0, 2**63 - 1), body=values)
@settings(max_examples=200, deadline=None)
def test_every_header_round_trips(kind: Kind, to: str, sender: str, corr: int,
                                  body: object) -> None:
    header = Header(kind, to, sender, corr, body)
    assert codec.decode(codec.encode_header(header)) == header


EXACT = [
    (Header(Kind.HELLO, body=["alpha", "i1"]), "960401a0a00092a5616c706861a26931"),
    (Header(Kind.WELCOME, body=["beta", "i2"]), "960402a0a00092a462657461a26932"),
    (Header(Kind.REFUSE, body=["name", "taken"]), "960403a0a00092a46e616d65a574616b656e"),
    (Header(Kind.TELL, "echo", "a/b", 0, {"x": 1}), "960404a46563686fa3612f620081a17801"),
    (Header(Kind.ASK, "echo", "a", 7, [1, 2]), "960405a46563686fa16107920102"),
    (Header(Kind.REPLY, "", "b/echo", 7, "ok"), "960406a0a6622f6563686f07a26f6b"),
    (Header(Kind.FAIL, "", "b/echo", 7, ["ValueError", "no", True]),
     "960407a0a6622f6563686f0793aa56616c75654572726f72a26e6fc3"),
    (Header(Kind.PING, "", "a"), "960408a0a16100c0"),
    (Header(Kind.BYE, "", "a", 0, "stopping"), "960409a0a16100a873746f7070696e67"),
    (Header(Kind.ROUTED, "", "server", 0, ["c2", "c1", 1, b"\x01"]),
     "96040aa0a67365727665720094a26332a2633101c40101"),
    (Header(Kind.ROUTES, "", "server"), "96040ba0a673657276657200c0"),
]


@pytest.mark.parametrize(("header", "hex_bytes"), EXACT, ids=[h.kind.name for h, _ in EXACT])
def test_each_kind_has_exact_bytes(header: Header, hex_bytes: str) -> None:
    assert codec.encode_header(header).hex() == hex_bytes
    assert codec.decode(bytes.fromhex(hex_bytes)) == header


def test_a_bundle_is_its_headers_as_they_were_encoded_alone() -> None:
    tell = codec.encode(Kind.TELL, "echo", "a/b", 0, {"x": 1})
    ask = codec.encode(Kind.ASK, "echo", "a", 7, [1, 2])
    bundle = codec.encode_bundle([tell, ask])
    # [4, 12, "", "", 0, [<tell>, <ask>]]: the two headers' bytes follow an array of two
    assert bundle.hex() == "96040ca0a00092" + tell.hex() + ask.hex()
    header = codec.decode(bundle)
    assert header.kind is Kind.BUNDLE
    assert codec.unbundle(header.body) == [codec.decode(tell), codec.decode(ask)]


@pytest.mark.parametrize("body", [
    None, [], b"\x96", [[V, 4, "a", "b", 0, None], "not a header"],
    [[V, 1, "", "", 0, ["alpha", "i1"]]],      # a HELLO may not be bundled
    [[V, 12, "", "", 0, [[V, 4, "a", "b", 0, None]]]],  # nor a bundle
    [[V, 8, "", "a", 0, None]],                # nor a PING
    [[V + 1, 4, "a", "b", 0, None]],           # a header of another version
], ids=["none", "empty", "bytes", "garbage-inside", "hello", "nested", "ping", "version"])
def test_a_bad_bundle_is_a_codec_error_as_a_whole(body: object) -> None:
    with pytest.raises(CodecError):
        codec.unbundle(body)


def test_other_protocol_version_is_a_version_mismatch() -> None:
    other = codec.PROTOCOL_VERSION + 1
    data = msgpack.packb([other, 4, "a", "b", 0, None])
    with pytest.raises(VersionMismatch) as caught:
        codec.decode(data)
    assert caught.value.version == other




@pytest.mark.parametrize("data", [
    b"", b"\xc1", msgpack.packb([V, 99, "", "", 0, None]), msgpack.packb([V, 4, 5, "", 0, None]),
    msgpack.packb([V, 4, "", "", -1, None]), msgpack.packb({"a": 1}), msgpack.packb([V, 4]),
    b"\x91" * 100_000, b"\xdd\xff\xff\xff\xff", msgpack.packb([V, 4, "", "", 0, None]) + b"x",
    b"\x96" + bytes([V]) + b"\x04\xa0\xa0\x00\x81\x90\x01",  # a map keyed by a list
    msgpack.packb([V, 4, "", "", 0, "x" * (codec.MAX_HEADER_SIZE + 1)]),
], ids=["empty", "reserved", "kind", "to", "corr", "map", "short", "deep", "huge-len",
        "extra", "list-key", "oversize"])
def test_malformed_headers_raise_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError):
        codec.decode(data)


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_garbage_raises_nothing_but_codec_error(data: bytes) -> None:
    try:
        codec.decode(data)
    except CodecError:
        pass


def test_unencodable_body_is_a_codec_error() -> None:
    with pytest.raises(CodecError):
        codec.encode(Kind.TELL, "a", "b", 0, object())
