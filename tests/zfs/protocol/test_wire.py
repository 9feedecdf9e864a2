"""The zfs wire: exact bytes per message kind, round trips, and what decode refuses."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zfs.protocol import wire
from zfs.protocol.errors import Failure, RemoteProtocolError
from zfs.protocol.inbound import decode

#: One message of every kind, with the msgpack bytes it must encode to: a change of the
#: wire shows here first.
EXACT: list[tuple[wire.Message, bytes]] = [
    (wire.Open("s1", "a.bin", 5, 1024, 8, "ch", "tp", {"k": 1}),
     b"\x99\xa4open\xa2s1\xa5a.bin\x05\xcd\x04\x00\x08\xa2ch\xa2tp\x81\xa1k\x01"),
    (wire.Open("s1", "a.bin", None, 1, 1, "c", "t", None),
     b"\x99\xa4open\xa2s1\xa5a.bin\xc0\x01\x01\xa1c\xa1t\xc0"),
    (wire.Chunk("s1", 7), b"\x93\xa5chunk\xa2s1\x07"),
    (wire.End("s1", 5, "ab"), b"\x94\xa3end\xa2s1\x05\xa2ab"),
    (wire.Abort("s1", "why"), b"\x93\xa5abort\xa2s1\xa3why"),
    (wire.Accepted("s1"), b"\x92\xa8accepted\xa2s1"),
    (wire.Acked("s1", 300), b"\x93\xa5acked\xa2s1\xcd\x01,"),
    (wire.Committed("s1"), b"\x92\xa9committed\xa2s1"),
    (wire.Failed("s1", Failure.IO, "disk"), b"\x94\xa6failed\xa2s1\xa2io\xa4disk"),
    (wire.InfoRequest("r"), b"\x92\xa5info?\xa1r"),
    (wire.FileInfo("r", "n", 9, "k"), b"\x95\xa4info\xa1r\xa1n\t\xa1k"),
    (wire.PrefixRequest("r", 4), b"\x93\xa7prefix?\xa1r\x04"),
    (wire.PrefixDigest("r", 4, "d"), b"\x94\xa6prefix\xa1r\x04\xa1d"),
    (wire.ChunkRequest("r", 0, 8, 0), b"\x95\xa6chunk?\xa1r\x00\x08\x00"),
    (wire.ChunkData("r", 8), b"\x93\xa4data\xa1r\x08"),
    (wire.MarkReport("r", 16), b"\x93\xa4mark\xa1r\x10"),
    (wire.DigestRequest("r"), b"\x92\xa7digest?\xa1r"),
    (wire.FileDigest("r", "d"), b"\x93\xa6digest\xa1r\xa1d"),
    (wire.DoneReport("r", wire.Status.SUCCESS), b"\x93\xa6report\xa1r\xa7success"),
    (wire.Refusal("r", Failure.EXPIRED), b"\x93\xa7refusal\xa1r\xa7expired"),
    (wire.TreeOpen("s1", "t", "k", 2, 9, 40, 1024, 8, "ch", "tp", None, False, True),
     b"\x9e\xa4tree\xa2s1\xa1t\xa1k\x02\t(\xcd\x04\x00\x08\xa2ch\xa2tp\xc0\xc2\xc3"),
    (wire.TreeOffer("s1"), b"\x92\xa5offer\xa2s1"),
    (wire.Checking("s1"), b"\x92\xa8checking\xa2s1"),
    (wire.TreePlan("s1", 9), b"\x93\xa4plan\xa2s1\t"),
    (wire.TreeInfo("r", "t", "k", 2, 9, 40), b"\x97\xa9tree-info\xa1r\xa1t\xa1k\x02\t("),
    (wire.MetaRequest("r", wire.Section.MANIFEST, 0, 40),
     b"\x95\xa5meta?\xa1r\xa8manifest\x00("),
    (wire.MetaData("r", wire.Section.DIGESTS, 32), b"\x94\xa4meta\xa1r\xa7digests "),
    (wire.RangeDigestRequest("r", 4, 5), b"\x94\xa6range?\xa1r\x04\x05"),
    (wire.RangeDigest("r", 4, 5, "d"), b"\x95\xa5range\xa1r\x04\x05\xa1d"),
]


@pytest.mark.parametrize(("message", "packed"), EXACT, ids=lambda v: type(v).__name__)
def test_every_kind_encodes_to_exact_bytes_and_back(message: wire.Message, packed: bytes) -> None:
    assert msgpack.packb(wire.encode(message)) == packed
    assert decode(msgpack.unpackb(packed)) == message


def test_every_message_kind_has_an_exact_bytes_case() -> None:
    assert {type(m) for m, _ in EXACT} == set(wire.Message.__args__)  # type: ignore[attr-defined]


@pytest.mark.parametrize("body", [
    None, 42, "open", [], [7], ["nope", "s1"],
    ["chunk", "s1"],                        # a field short
    ["chunk", "s1", 7, 8],                  # a field too many
    ["chunk", "s1", -1],                    # negative offset
    ["chunk", "s1", True],                  # a bool is not a number here
    ["chunk", "s1", 1.5],
    ["chunk", "s1", 2**64],
    ["chunk", 1, 7],                        # the stream id must be a string
    ["open", "s1", 42, 1, 1, 1, "c", "t", None],
    ["open", "s1", "a", "big", 1, 1, "c", "t", None],
    ["acked", "s1", "10"],                  # no coercion: push and pull alike
    ["chunk?", "r", "0", 8, 0],
    ["report", "r", "maybe"],
    ["tree", "s1", "t", "k", 2, 9, 40, 1024, 8, "ch", "tp", None, 0, True],   # 0: no bool
    ["meta?", "r", "passwords", 0, 40],     # no such section
    ["plan", "s1", -9],
])
def test_malformed_bodies_are_refused_as_remote_errors(body: Any) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(body)


def test_an_unknown_failure_name_reads_as_a_protocol_failure() -> None:
    assert decode(["failed", "s", "martian", "?"]) == wire.Failed("s", Failure.PROTOCOL, "?")


@given(st.lists(st.one_of(st.none(), st.booleans(), st.integers(), st.text(), st.binary(),
                          st.floats(allow_nan=False)), max_size=9))
def test_decode_never_raises_anything_but_a_remote_error(body: list[Any]) -> None:
    try:
        message = decode(body)
    except RemoteProtocolError:
        return
    assert decode(wire.encode(message)) == message
