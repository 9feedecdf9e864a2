"""The pull cores, alone and joined through an in-memory link that loses, repeats and reorders."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zfs.protocol.errors import Failure, LocalProtocolError
from zfs.protocol.pull.download import (
    Commit, DigestPrefix, DlState, Download, Finish, OpenPartial, ReportMark, RequestChunk,
    RequestDigest, RequestInfo, RequestPrefix, StartOver, WriteChunk)
from zfs.protocol.pull.owner import TX_TRANSITIONS, Shares, TxState
from zfs.protocol.pull.serving import (Downloaded, Refuse, Released, SendChunk, SendDigest,
                                       SendInfo, SendPrefixDigest, SiteCut, TimedOut)
from zfs.protocol.wire import Status

A = "beta/zfs.dl.1"


def shares_with(size: int = 100, timeout: float = 5.0, rid: str = "r1") -> Shares:
    shares = Shares(max_chunk_size=64)
    shares.transaction_opened("t1", timeout, now=0.0)
    shares.file_added("t1", rid, "data.bin", size, now=0.0)
    return shares


# ---- owner core -----------------------------------------------------------------

def test_unknown_rid_is_refused_as_unknown() -> None:
    shares = shares_with()
    assert shares.chunk_requested("nope", "beta", A, 0, 10, 0, 1.0) == [
        Refuse("nope", A, Failure.UNKNOWN)]


def test_chunk_request_is_clamped_to_the_file_and_to_max_chunk() -> None:
    shares = shares_with(size=100)
    assert shares.chunk_requested("r1", "beta", A, 90, 50, 0, 1.0) == [SendChunk("r1", A, 90, 10)]
    assert shares.chunk_requested("r1", "beta", A, 0, 1000, 0, 1.0) == [SendChunk("r1", A, 0, 64)]


@pytest.mark.parametrize("offset,length", [(-1, 10), (100, 10), (0, 0), (200, 1)])
def test_chunk_request_out_of_the_file_is_a_bad_request(offset: int, length: int) -> None:
    shares = shares_with(size=100)
    assert shares.chunk_requested("r1", "beta", A, offset, length, 0, 1.0) == [
        Refuse("r1", A, Failure.PROTOCOL)]


def test_prefix_digest_only_for_a_prefix_within_the_file() -> None:
    shares = shares_with(size=100)
    assert shares.info_requested("r1", "beta", A, 1.0) == [
        SendInfo("r1", A, "data.bin", 100, "r1")]
    assert shares.prefix_requested("r1", "beta", A, 40, 1.0) == [SendPrefixDigest("r1", A, 40)]
    assert shares.prefix_requested("r1", "beta", A, 400, 1.0) == [
        Refuse("r1", A, Failure.PROTOCOL)]


def test_idle_transaction_expires_once_with_its_file_names() -> None:
    shares = shares_with(timeout=5.0)
    shares.file_added("t1", "r2", "b.bin", 10, now=1.0)
    assert shares.time_passed(5.5) == []
    out = shares.time_passed(6.0)
    assert TimedOut("t1", ("data.bin", "b.bin")) in out
    assert {c.rid for c in out if isinstance(c, Released)} == {"r1", "r2"}
    assert shares.time_passed(100.0) == []
    assert shares.chunk_requested("r1", "beta", A, 0, 1, 0, 101.0) == [
        Refuse("r1", A, Failure.EXPIRED)]


def test_activity_on_any_file_keeps_the_transaction_alive() -> None:
    shares = shares_with(timeout=5.0)
    for now in range(1, 30):     # each request confirms the byte before it
        shares.chunk_requested("r1", "beta", A, now - 1, 1, now - 1, float(now))
        assert shares.time_passed(now + 4.9) == []
    assert any(isinstance(c, TimedOut) for c in shares.time_passed(34.0))


def test_callback_fires_once_per_recipient_per_file() -> None:
    shares = shares_with()
    shares.chunk_requested("r1", "beta", A, 0, 1, 0, 1.0)
    shares.chunk_requested("r1", "gamma", "gamma/x", 0, 1, 0, 1.0)
    first = shares.download_reported("r1", "beta", A, Status.SUCCESS, 2.0)
    assert first == [Downloaded("t1", "r1", "beta", Status.SUCCESS, "data.bin")]
    assert shares.download_reported("r1", "beta", A, Status.SUCCESS, 2.0) == []
    out = shares.time_passed(100.0)
    # gamma started and never reported: it is told "failed" at expiry; beta not again
    assert [c for c in out if isinstance(c, Downloaded)] == [
        Downloaded("t1", "r1", "gamma", Status.FAILED, "data.bin")]


def test_explicit_end_reports_pending_as_aborted_without_timeout_callback() -> None:
    shares = shares_with()
    shares.info_requested("r1", "beta", A, 1.0)
    out = shares.transaction_ended("t1", 2.0)
    assert Downloaded("t1", "r1", "beta", Status.ABORTED, "data.bin") in out
    assert not any(isinstance(c, TimedOut) for c in out)
    assert shares.digest_requested("r1", "beta", A, 3.0) == [Refuse("r1", A, Failure.EXPIRED)]
    with pytest.raises(LocalProtocolError):
        shares.file_added("t1", "r9", "x", 1, 3.0)


def test_changed_source_is_refused_from_then_on() -> None:
    shares = shares_with()
    assert shares.source_changed("r1", A) == [Refuse("r1", A, Failure.CHANGED)]
    assert shares.chunk_requested("r1", "beta", A, 0, 1, 0, 1.0) == [
        Refuse("r1", A, Failure.CHANGED)]


def _budgeted(budget: int, size: int = 10_000, **kwargs: Any) -> Shares:
    shares = Shares(max_inflight_bytes=budget, **kwargs)
    shares.transaction_opened("t1", 600.0, 0.0)
    shares.file_added("t1", "r1", "f", size, 0.0)
    return shares


def test_requests_past_a_sites_share_wait_and_are_served_as_chunks_are_confirmed() -> None:
    shares = _budgeted(40)                  # one site alone may hold 40 // 2 = 20 bytes
    sent = [shares.chunk_requested("r1", "b", A, off, 10, 0, 1.0) for off in (0, 10, 20, 30)]
    assert sent == [[SendChunk("r1", A, 0, 10)], [SendChunk("r1", A, 10, 10)], [], []]
    assert shares.in_flight.bytes == 20
    # chunk 0 arrived: the next request says so (mark 10); the oldest waiting goes first
    assert shares.chunk_requested("r1", "b", A, 40, 10, 10, 2.0) == [SendChunk("r1", A, 20, 10)]
    assert shares.in_flight.bytes == 20


def test_a_waiting_request_that_became_its_downloads_mark_goes_first() -> None:
    shares = _budgeted(20)
    assert shares.chunk_requested("r1", "b", A, 0, 10, 0, 1.0) == [SendChunk("r1", A, 0, 10)]
    assert shares.chunk_requested("r1", "b", "b/other", 60, 10, 50, 1.0) == []  # not its mark
    assert shares.chunk_requested("r1", "b", A, 10, 10, 0, 1.0) == []      # waits behind it
    # chunk 0 arrived (mark 10): A's request for its mark goes before the older one
    assert shares.mark_reported("r1", "b", A, 10, 2.0) == [SendChunk("r1", A, 10, 10)]


def test_many_names_from_one_site_hold_no_more_than_its_share() -> None:
    shares = _budgeted(16 << 20, size=64 << 20, max_chunk_size=1 << 20)
    for name in range(5000):                # 5,000 "downloads" asking 1 MiB at 0, never reading
        shares.chunk_requested("r1", "evil", f"evil/dl{name}", 0, 1 << 20, 0, 1.0)
    assert shares.in_flight.bytes <= 16 << 20      # its share of each pool: 8 + 8 MiB
    # an honest site arriving now is served at once, from the room left
    assert shares.chunk_requested("r1", "good", "good/dl", 0, 1 << 20, 0, 1.1) == [
        SendChunk("r1", "good/dl", 0, 1 << 20)]


def test_a_site_over_its_download_or_waiting_limit_is_refused() -> None:
    shares = _budgeted(10, max_downloads_per_site=2)
    shares.chunk_requested("r1", "b", "b/1", 0, 10, 0, 1.0)
    shares.chunk_requested("r1", "b", "b/2", 0, 10, 0, 1.0)
    assert shares.chunk_requested("r1", "b", "b/3", 0, 10, 0, 1.0) == [
        Refuse("r1", "b/3", Failure.REFUSED)]


def test_a_site_that_never_confirms_is_cut_and_its_share_freed() -> None:
    shares = _budgeted(20, stall_timeout=5.0)
    shares.chunk_requested("r1", "slow", "slow/dl", 0, 10, 0, 1.0)
    assert shares.in_flight.bytes == 10
    assert SiteCut("slow") not in shares.time_passed(5.5)
    assert SiteCut("slow") in shares.time_passed(6.5)
    assert shares.in_flight.bytes == 0


def test_lost_recipient_and_silent_download_free_the_budget() -> None:
    shares = _budgeted(20, idle_download=5.0)
    shares.chunk_requested("r1", "gone", "gone/dl", 0, 10, 0, 1.0)
    shares.chunk_requested("r1", "quiet", "quiet/dl", 0, 10, 0, 1.0)
    assert shares.chunk_requested("r1", "b", A, 30, 10, 20, 3.0) == []   # the budget is full
    assert shares.recipient_lost("gone") == [SendChunk("r1", A, 30, 10)]
    assert shares.in_flight.bytes == 20
    assert shares.time_passed(7.0) == []    # quiet/dl silent for 6 s: its bytes stop counting
    assert shares.in_flight.bytes == 10


def test_waiting_request_of_an_ended_transaction_is_refused() -> None:
    shares = Shares(max_inflight_bytes=10)
    shares.transaction_opened("t1", 60.0, 0.0)
    shares.file_added("t1", "r1", "f", 100, 0.0)
    shares.transaction_opened("t2", 60.0, 0.0)
    shares.file_added("t2", "r2", "g", 100, 0.0)
    shares.chunk_requested("r1", "b", "b/one", 0, 10, 0, 1.0)
    assert shares.chunk_requested("r2", "b", A, 20, 10, 0, 1.0) == []
    out = shares.transaction_ended("t2", 2.0)
    assert Refuse("r2", A, Failure.EXPIRED) in out


def test_expired_memory_is_bounded() -> None:
    shares = Shares(expired_memory=2)
    for i in range(4):
        shares.transaction_opened(f"t{i}", 1.0, 0.0)
        shares.file_added(f"t{i}", f"r{i}", "f", 1, 0.0)
    shares.time_passed(10.0)
    assert shares.digest_requested("r0", "b", A, 11.0) == [Refuse("r0", A, Failure.UNKNOWN)]
    assert shares.digest_requested("r3", "b", A, 11.0) == [Refuse("r3", A, Failure.EXPIRED)]


def test_transaction_transitions_are_one_way() -> None:
    assert TX_TRANSITIONS[TxState.EXPIRED] == frozenset()
    assert TxState.OPEN in {s for s in TxState if TX_TRANSITIONS[s]}


# ---- download core --------------------------------------------------------------

def test_download_keeps_a_window_and_refills_it() -> None:
    dl = Download(window_chunks=3, chunk_size=10)
    assert dl.started(0.0) == [RequestInfo()]
    assert dl.info_received("f", 45, "k", 0.0) == [OpenPartial("f", "k")]
    out = dl.partial_opened(0, 0.0)
    assert out == [RequestChunk(0, 10, 0), RequestChunk(10, 10, 0), RequestChunk(20, 10, 0)]
    # the refill goes out before the write, so the owner works while we write
    assert dl.chunk_received(0, 10, 0.1) == [RequestChunk(30, 10, 10), WriteChunk(0)]
    assert dl.chunk_received(0, 10, 0.1) == []            # duplicate ignored
    assert dl.chunk_received(10, 10, 0.1) == [RequestChunk(40, 5, 20), WriteChunk(10)]
    # nothing left to ask for: the new mark is reported so the owner's budget learns it
    assert dl.chunk_received(30, 10, 0.2) == [WriteChunk(30)]    # 20 still missing
    assert dl.chunk_received(20, 10, 0.2) == [ReportMark(40), WriteChunk(20)]
    assert dl.chunk_received(40, 5, 0.3) == [WriteChunk(40), RequestDigest()]
    assert dl.digest_received("abc") == [Commit(45, "abc")]
    assert dl.committed() == [Finish(DlState.DONE)]


def opened(dl: Download, size: int, have: int = 0) -> list[Any]:
    dl.started(0.0)
    dl.info_received("f", size, "k", 0.0)
    return dl.partial_opened(have, 0.0)


def test_timed_out_request_is_resent_then_fails_after_retries() -> None:
    dl = Download(window_chunks=1, chunk_size=10, request_timeout=1.0, retries=2)
    opened(dl, 10)
    assert dl.time_passed(1.0) == [RequestChunk(0, 10, 0)]
    assert dl.time_passed(2.0) == [RequestChunk(0, 10, 0)]
    out = dl.time_passed(3.0)
    assert len(out) == 1 and isinstance(out[0], Finish) and out[0].failure is Failure.TIMEOUT
    assert dl.state is DlState.FAILED


def test_resume_continues_after_a_matching_prefix() -> None:
    dl = Download(window_chunks=2, chunk_size=10)
    assert opened(dl, 40, have=25) == [RequestPrefix(25), DigestPrefix(25)]
    assert dl.prefix_digested("d25", 0.0) == []
    assert dl.prefix_received(25, "d25", 0.0) == [
        RequestChunk(25, 10, 25), RequestChunk(35, 5, 25)]
    assert dl.bytes_done == 25


def test_resume_starts_over_when_the_prefix_differs() -> None:
    dl = Download(window_chunks=1, chunk_size=10)
    opened(dl, 40, have=25)
    assert dl.prefix_received(25, "theirs", 0.0) == []
    assert dl.prefix_digested("mine", 0.0) == [StartOver(), RequestChunk(0, 10, 0)]


def test_more_bytes_than_the_file_start_over() -> None:
    dl = Download(window_chunks=1, chunk_size=10)
    assert opened(dl, 5, have=25) == [StartOver(), RequestChunk(0, 5, 0)]


def test_complete_prefix_goes_straight_to_verification() -> None:
    dl = Download()
    opened(dl, 25, have=25)
    dl.prefix_digested("d", 0.0)
    assert dl.prefix_received(25, "d", 0.0) == [RequestDigest()]


def test_unsafe_resume_key_from_the_owner_fails_the_download() -> None:
    dl = Download()
    dl.started(0.0)
    out = dl.info_received("f", 10, "a/b", 0.0)
    assert isinstance(out[0], Finish) and out[0].failure is Failure.UNSAFE_NAME


def test_file_shared_with_a_key_names_it_in_the_info() -> None:
    shares = Shares()
    shares.transaction_opened("t", 5.0, 0.0)
    shares.file_added("t", "r", "f", 3, 0.0, key="stable")
    assert shares.info_requested("r", "b", A, 1.0) == [SendInfo("r", A, "f", 3, "stable")]


def test_unsafe_name_from_the_owner_fails_the_download() -> None:
    dl = Download()
    dl.started(0.0)
    out = dl.info_received("../etc/passwd", 10, "k", 0.0)
    assert isinstance(out[0], Finish) and out[0].failure is Failure.UNSAFE_NAME


def test_refusal_maps_to_failure_and_later_events_are_ignored() -> None:
    dl = Download()
    dl.started(0.0)
    out = dl.refused(Failure.EXPIRED)
    assert out[0].failure is Failure.EXPIRED  # type: ignore[union-attr]
    assert dl.info_received("f", 10, "k", 1.0) == []
    assert dl.abort_requested() == [] and dl.owner_lost() == []


def test_abort_ends_promptly() -> None:
    dl = Download()
    opened(dl, 100)
    assert dl.abort_requested() == [Finish(DlState.ABORTED, Failure.ABORTED, "aborted")]
    assert dl.time_passed(100.0) == []


def test_empty_file_goes_straight_to_verification() -> None:
    dl = Download()
    assert opened(dl, 0) == [RequestDigest()]


def test_chunk_of_the_wrong_length_is_a_bad_reply() -> None:
    dl = Download(chunk_size=10)
    opened(dl, 30)
    out = dl.chunk_received(0, 3, 0.1)
    assert out[0].failure is Failure.PROTOCOL  # type: ignore[union-attr]


# ---- the two joined through a lossy link ----------------------------------------

@dataclass
class Link:
    """Messages in flight both ways; each may be dropped, duplicated or delayed."""

    rng: random.Random
    drop: float
    dup: float
    queue: list[tuple[str, Any]] = field(default_factory=list)

    def send(self, direction: str, msg: Any) -> None:
        if self.rng.random() < self.drop:
            return
        self.queue.append((direction, msg))
        if self.rng.random() < self.dup:
            self.queue.append((direction, msg))

    def pop(self) -> Optional[tuple[str, Any]]:
        if not self.queue:
            return None
        return self.queue.pop(self.rng.randrange(len(self.queue)))   # any order


class Recipient:
    """One download joined to the owner through the link; its disk is a bytearray."""

    def __init__(self, address: str, link: Link, window: int, chunk: int, have: bytes) -> None:
        self.address, self.link = address, link
        self.dl = Download(window_chunks=window, chunk_size=chunk, request_timeout=1.0,
                           retries=1000)
        self.disk = bytearray(have)
        self.payload: dict[int, bytes] = {}
        self.finished_at = 0.0     # the simulated time when the run ended

    def run(self, cmds: list[Any], now: float) -> None:
        dl, disk = self.dl, self.disk
        for cmd in cmds:
            if isinstance(cmd, (RequestInfo, RequestPrefix, RequestChunk, ReportMark,
                                RequestDigest)):
                self.link.send("up", (self.address, cmd))
            elif isinstance(cmd, OpenPartial):
                self.run(dl.partial_opened(len(disk), now), now)
            elif isinstance(cmd, DigestPrefix):
                assert cmd.length == len(disk)
                self.run(dl.prefix_digested(repr(hash(bytes(disk))), now), now)
            elif isinstance(cmd, WriteChunk):
                body = self.payload.pop(cmd.offset)
                disk.extend(bytes(max(0, cmd.offset + len(body) - len(disk))))
                disk[cmd.offset:cmd.offset + len(body)] = body
            elif isinstance(cmd, StartOver):
                disk.clear()
            elif isinstance(cmd, Commit):
                ok = cmd.size == len(disk) and repr(hash(bytes(disk))) == cmd.digest
                self.run(dl.committed() if ok else dl.commit_failed("mismatch"), now)

    def answered(self, msg: Any, data: bytes, now: float) -> None:
        dl = self.dl
        if isinstance(msg, SendInfo):
            self.run(dl.info_received(msg.name, msg.size, msg.key, now), now)
        elif isinstance(msg, SendPrefixDigest):
            self.run(dl.prefix_received(msg.length, repr(hash(data[:msg.length])), now), now)
        elif isinstance(msg, SendChunk):
            self.payload[msg.offset] = data[msg.offset:msg.offset + msg.length]
            self.run(dl.chunk_received(msg.offset, msg.length, now), now)
        elif isinstance(msg, SendDigest):
            self.run(dl.digest_received(repr(hash(data))), now)
        elif isinstance(msg, Refuse):
            self.run(dl.refused(msg.failure), now)


def owner_answers(shares: Shares, to: str, msg: Any, now: float) -> list[Any]:
    if isinstance(msg, RequestInfo):
        return shares.info_requested("r", "b", to, now)
    if isinstance(msg, RequestPrefix):
        return shares.prefix_requested("r", "b", to, msg.length, now)
    if isinstance(msg, RequestChunk):
        return shares.chunk_requested("r", "b", to, msg.offset, msg.length, msg.mark, now)
    if isinstance(msg, ReportMark):
        return shares.mark_reported("r", "b", to, msg.mark, now)
    return shares.digest_requested("r", "b", to, now)


def run_transfers(data: bytes, seed: int, drop: float, dup: float, window: int, chunk: int,
                  haves: list[bytes]) -> list[Recipient]:
    """Downloads of one file by several recipients at once, through one lossy link."""
    link = Link(random.Random(seed), drop, dup)
    shares = Shares(max_chunk_size=1 << 20, max_inflight_bytes=2 * chunk)   # forces waits
    shares.transaction_opened("t", 1e9, 0.0)
    shares.file_added("t", "r", "f.bin", len(data), 0.0)
    recipients = {f"b/dl{i}": Recipient(f"b/dl{i}", link, window, chunk, have)
                  for i, have in enumerate(haves)}
    now = 0.0
    for rcpt in recipients.values():
        rcpt.run(rcpt.dl.started(now), now)
    for _ in range(200_000):
        if all(r.dl.state in (DlState.DONE, DlState.FAILED) for r in recipients.values()):
            break
        item = link.pop()
        if item is None:
            now += 1.0
            for rcpt in recipients.values():
                rcpt.run(rcpt.dl.time_passed(now), now)
            # The owner's time passes too: a download it has not heard of for a while
            # (its last report lost) stops holding a share of the budget.
            for answer in shares.time_passed(now):
                if hasattr(answer, "to"):
                    link.send("down", answer)
            continue
        direction, msg = item
        if direction == "up":
            to, request = msg
            for answer in owner_answers(shares, to, request, now):
                link.send("down", answer)
            # the owner's memory bound: both pools of its budget, plus one chunk
            assert shares.in_flight.bytes <= 2 * (2 * chunk) + chunk
        else:
            recipients[msg.to].answered(msg, data, now)
    for rcpt in recipients.values():
        rcpt.finished_at = now
    return list(recipients.values())


def run_transfer(data: bytes, seed: int, drop: float, dup: float, window: int,
                 chunk: int, have: bytes = b"") -> tuple[Download, bytearray]:
    rcpt = run_transfers(data, seed, drop, dup, window, chunk, [have])[0]
    return rcpt.dl, rcpt.disk


@settings(max_examples=150, deadline=None)
@given(size=st.integers(0, 300), seed=st.integers(0, 2**32), drop=st.floats(0, 0.4),
       dup=st.floats(0, 0.4), window=st.integers(1, 6), chunk=st.integers(1, 64))
def test_lossy_link_still_yields_the_exact_file(size: int, seed: int, drop: float, dup: float,
                                                window: int, chunk: int) -> None:
    data = random.Random(seed).randbytes(size)
    dl, disk = run_transfer(data, seed, drop, dup, window, chunk)
    assert dl.state is DlState.DONE
    assert bytes(disk) == data


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 300), cut=st.integers(0, 300), corrupt=st.booleans(),
       seed=st.integers(0, 2**32))
def test_resume_from_any_prefix_yields_the_exact_file(size: int, cut: int, corrupt: bool,
                                                      seed: int) -> None:
    data = random.Random(seed).randbytes(size)
    have = bytearray(data[:min(cut, size)])
    if corrupt and have:
        have[0] ^= 0xFF
    dl, disk = run_transfer(data, seed, 0.1, 0.1, 3, 16, bytes(have))
    assert dl.state is DlState.DONE
    assert bytes(disk) == data
    if have and not corrupt:
        assert dl.start == len(have) and dl.received == size - len(have)


def test_no_answer_at_all_fails_instead_of_hanging() -> None:
    dl, _ = run_transfer(b"x" * 50, 1, 1.0, 0.0, 2, 10)
    assert dl.state is DlState.FAILED


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 300), seed=st.integers(0, 2**32), drop=st.floats(0, 0.3),
       dup=st.floats(0, 0.3), window=st.integers(1, 6), chunk=st.integers(1, 64),
       n=st.integers(2, 4))
def test_recipients_sharing_the_owner_budget_all_finish(size: int, seed: int, drop: float,
                                                         dup: float, window: int, chunk: int,
                                                         n: int) -> None:
    data = random.Random(seed).randbytes(size)
    for rcpt in run_transfers(data, seed, drop, dup, window, chunk, [b""] * n):
        assert rcpt.dl.state is DlState.DONE
        assert bytes(rcpt.disk) == data


@settings(max_examples=80, deadline=None)
@given(size=st.integers(1, 400), seed=st.integers(0, 2**32), window=st.integers(1, 16),
       chunk=st.integers(1, 32), n=st.integers(2, 4))
def test_on_a_clean_link_the_budget_never_leaves_a_download_waiting_for_a_timeout(
        size: int, seed: int, window: int, chunk: int, n: int) -> None:
    """Time only passes when nothing is in flight: a run that needed it was stuck."""
    data = random.Random(seed).randbytes(size)
    for rcpt in run_transfers(data, seed, 0.0, 0.0, window, chunk, [b""] * n):
        assert rcpt.dl.state is DlState.DONE
        assert rcpt.finished_at == 0.0


def test_a_lost_owner_is_waited_for_then_requests_go_again() -> None:
    dl = Download(window_chunks=2, chunk_size=10, request_timeout=1.0, retries=3, owner_wait=3.0)
    opened(dl, 100)
    assert dl.owner_gone(0.5, "cut") == []
    assert dl.time_passed(2.9) == []                     # away: nothing sent, no failure
    again = dl.owner_back(3.0)
    # The info is asked again: an owner that restarted without the RID says so at once.
    assert [type(c) for c in again] == [RequestInfo, RequestChunk, RequestChunk]
    assert dl.state.name == "FETCHING"
    assert dl.info_received("f", 100, "k", 3.1) == []    # the same file: nothing changes
    (finish,) = dl.refused(Failure.UNKNOWN, "phoenix shares nothing")
    assert isinstance(finish, Finish) and finish.failure is Failure.UNKNOWN


def test_an_owner_back_before_it_named_the_file_is_asked_once() -> None:
    dl = Download(window_chunks=2, chunk_size=10, request_timeout=1.0, retries=3, owner_wait=3.0)
    dl.started(0.0)
    dl.owner_gone(0.5, "cut")
    assert [type(c) for c in dl.owner_back(1.0)] == [RequestInfo]


def test_an_owner_away_longer_than_its_wait_fails_the_download() -> None:
    dl = Download(window_chunks=2, chunk_size=10, request_timeout=1.0, retries=3)
    opened(dl, 100)
    dl.owner_gone(0.5, "cut")
    assert dl.time_passed(1.4) == []                     # one request timeout, not three
    (finish,) = dl.time_passed(1.5)
    assert isinstance(finish, Finish) and "not back within 1 s" in finish.detail


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 30), st.integers(0, 60),
                          st.integers(0, 60), st.integers(1, 8), st.sampled_from("rme")),
                max_size=300))
def test_bytes_in_flight_never_pass_twice_the_budget_whatever_peers_ask(
        ops: list[tuple[int, int, int, int, int, str]]) -> None:
    """Sites, names, offsets and marks drawn at will (a hostile recipient's freedom)."""
    from zfs.protocol.pull.budget import Decision, InFlight
    flight = InFlight(budget=20)
    for step, (site, name, offset, mark, length, op) in enumerate(ops):
        to = f"s{site}/dl{name}"
        if op == "r":
            if flight.requested("r", f"s{site}", to, offset, length, mark,
                                float(step)) is Decision.SERVE:
                flight.served(to, offset, length)
        elif op == "m":
            flight.marked(to, mark, float(step))
        else:
            flight.ended(to)
        while (waiting := flight.next_waiting()) is not None:   # as Shares releases them
            if waiting[4]:
                flight.served(waiting[1], waiting[2], waiting[3])
        assert 0 <= flight.bytes <= 2 * 20 + 8
