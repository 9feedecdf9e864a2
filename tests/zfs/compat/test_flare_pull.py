"""FLARE's FileDownloader facade, used the way its reference document shows."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

import actors
from tests.support.procs import start_sites, wait_until
from zfs.compat.flare import FileDownloader, Signal, download_file
from zfs.errors import TransactionExpired
from zfs.files import file_digest

MiB = 1 << 20


def child_flare_share(site: actors.Site, paths: list[str], timeout: float,
                      timeout_cb: Any = None, file_downloaded_cb: Any = None) -> dict[str, Any]:
    """The owner's side, as a FLARE app writes it (runs in a child site)."""
    tx_id = FileDownloader.new_transaction(site, timeout, timeout_cb, job="j7")
    rids = [FileDownloader.add_file(tx_id, p, file_downloaded_cb, job="j7") for p in paths]
    return {"tx_id": tx_id, "rids": rids}


def child_flare_download(site: actors.Site, owner: str, rid: str, location: str) -> list[Any]:
    err, path = download_file(owner, rid, per_request_timeout=5.0, cell=site, location=location)
    return [err, path]


def test_signal_is_an_abort_flag() -> None:
    signal = Signal()
    assert not signal.triggered and not signal.is_set()
    signal.trigger()
    assert signal.triggered and signal.is_set()


def test_owner_in_one_process_recipient_in_another(site: actors.Site, tmp_path: Path) -> None:
    sources = [tmp_path / "model.bin", tmp_path / "meta.json"]
    sources[0].write_bytes(os.urandom(2 * MiB + 3))
    sources[1].write_bytes(b'{"round": 3}')
    with start_sites(site, "server")[0] as server:
        shared = server.call(site, "tests.zfs.compat.test_flare_pull:child_flare_share",
                             [str(p) for p in sources], 30.0,
                             file_downloaded_cb={"$recorder": "done"})
        for rid, source in zip(shared["rids"], sources):
            err, path = download_file("server", rid, per_request_timeout=5.0, cell=site,
                                      location=str(tmp_path / "in"), abort_signal=Signal())
            assert err is None
            assert path == str(tmp_path / "in" / source.name)
            assert file_digest(path) == file_digest(source)
        events = wait_until(lambda: len(e := server.events(site, "done")) == 2 and e, 10)
    assert sorted(map(tuple, events)) == sorted(
        (rid, "test", "success", s.name, {"job": "j7"}) for rid, s in zip(shared["rids"], sources))


def test_timeout_cb_gets_cb_kwargs_and_errors_come_back_as_messages(
        site: actors.Site, tmp_path: Path) -> None:
    source = tmp_path / "a.bin"
    source.write_bytes(b"x" * 100)
    fired = threading.Event()
    calls: list[tuple[Any, ...]] = []

    def on_timeout(tx_id: str, names: list[str], **kwargs: Any) -> None:
        calls.append((tx_id, names, kwargs))
        fired.set()

    with start_sites(site, "client")[0] as client:
        tx_id = FileDownloader.new_transaction(site, 1.0, on_timeout, job="j8")
        rid = FileDownloader.add_file(tx_id, str(source))
        assert fired.wait(10)
        assert calls == [(tx_id, ["a.bin"], {"job": "j8"})]
        err, path = client.call(site, "tests.zfs.compat.test_flare_pull:child_flare_download", "test",
                                rid, str(tmp_path / "in"))
        assert err.startswith("TransactionExpired") and path is None
        err, path = client.call(site, "tests.zfs.compat.test_flare_pull:child_flare_download", "test",
                                "bogus-rid-0123456789", str(tmp_path / "in"))
        assert err.startswith("UnknownReference") and path is None
    with pytest.raises(TransactionExpired):
        FileDownloader.add_file(tx_id, str(source))


def test_triggered_signal_aborts(site: actors.Site, tmp_path: Path) -> None:
    source = tmp_path / "b.bin"
    source.write_bytes(os.urandom(MiB))
    with start_sites(site, "server")[0] as server:
        shared = server.call(site, "tests.zfs.compat.test_flare_pull:child_flare_share", [str(source)], 30.0)
        signal = Signal()
        signal.trigger()
        err, path = download_file("server", shared["rids"][0], 5.0, site,
                                  location=str(tmp_path / "in"), abort_signal=signal)
    assert err is not None and "abort" in err and path is None
    assert not os.path.exists(tmp_path / "in" / "b.bin")
