"""The FLARE FileStreamer and Nanite broadcast facades, used as their reference documents
show, between sites in separate OS processes. Functions at the bottom run in a child."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

import actors
from tests.support.faults import make_file
from tests.support.procs import SiteProcess, start_sites, wait_until
from zfs.compat.flare import FileStreamer, ReturnCode
from zfs.compat.nanite import broadcast_data, broadcast_file
from zfs.errors import StreamRefused, UnsafeName
from zfs.files import file_digest

CHUNK = 64 << 10


@pytest.fixture(scope="module")
def peers(hub: actors.Site) -> Iterator[dict[str, SiteProcess]]:
    procs = {proc.name: proc for proc in start_sites(hub, "n1", "n2", "n3")}
    try:
        yield procs
    finally:
        for proc in procs.values():
            proc.kill()


# ---------------------------------------------------------------- FLARE


def test_flare_stream_file_reaches_the_registered_callback(
        hub: actors.Site, peers: dict[str, SiteProcess], tmp_path: Path) -> None:
    server = peers["n1"]
    dest = tmp_path / "server"
    dest.mkdir()
    server.call(hub, "tests.zfs.compat.test_flare_push:flare_register", "app", "weights", str(dest),
                record={"$recorder": "flare-done"}, chunks={"$recorder": "flare-chunks"})
    src = make_file(tmp_path / "w.bin", 3 * CHUNK + 5)
    rc, ok = FileStreamer.stream_file("app", "weights", {"round": 3}, ["n1"], str(src), hub,
                                      chunk_size=CHUNK)
    assert (rc, ok) == (ReturnCode.OK, True)
    [[done]] = server.events(hub, "flare-done")
    assert done["name"] == "w.bin" and done["size"] == src.stat().st_size
    assert done["location"] == str(dest / "w.bin") and done["round"] == 3
    assert done["kwargs"] == {"tag": "weights-cb"} and done["fl_ctx_is_site"]
    assert file_digest(dest / "w.bin") == file_digest(src)
    chunks = server.events(hub, "flare-chunks")
    assert [c[0]["received"] for c in chunks] == [CHUNK, 2 * CHUNK, 3 * CHUNK, 3 * CHUNK + 5]
    assert all(c[0]["round"] == 3 for c in chunks)


def test_flare_stream_file_returns_error_codes_instead_of_raising(
        hub: actors.Site, peers: dict[str, SiteProcess], tmp_path: Path) -> None:
    src = make_file(tmp_path / "w.bin", 10)
    assert FileStreamer.stream_file("app", "nobody", {}, ["n1"], str(src), hub) == \
        (ReturnCode.ERROR, False)
    assert FileStreamer.stream_file("app", "weights", None, ["n1"], str(tmp_path / "none"),
                                    hub, optional=True) == (ReturnCode.ERROR, False)
    assert FileStreamer.stream_file("app", "weights", None, ["n1"], str(src), hub,
                                    secure=True) == (ReturnCode.ERROR, False)


def test_flare_getters_read_the_stream_context() -> None:
    ctx = {"zfs.file_name": "a", "zfs.file_location": "/d/a", "zfs.file_size": 3}
    assert (FileStreamer.get_file_name(ctx), FileStreamer.get_file_location(ctx),
            FileStreamer.get_file_size(ctx)) == ("a", "/d/a", 3)


# ---------------------------------------------------------------- Nanite


def test_nanite_broadcast_reaches_every_subscriber_of_the_domain_only(
        hub: actors.Site, peers: dict[str, SiteProcess], tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    peers["n1"].call(hub, "zfs.compat.nanite:subscribe_to_files", "models", True,
                     callback={"$recorder": "models"}, file_root=str(root))
    peers["n2"].call(hub, "zfs.compat.nanite:subscribe_to_files", "models",
                     callback={"$recorder": "models"})
    peers["n3"].call(hub, "zfs.compat.nanite:subscribe_to_files", "other",
                     callback={"$recorder": "other"})
    src = make_file(tmp_path / "m.bin", 20_001)   # small: events come back in one header
    sent = broadcast_file(hub, str(src), domain="models", destination="model.bin",
                          meta={"round": 1})
    assert sent == src.stat().st_size
    [[data, dest, meta]] = peers["n1"].events(hub, "models")
    assert data is None and dest == str(root / "model.bin") and meta == {"round": 1}
    assert file_digest(root / "model.bin") == file_digest(src)
    [[data, dest, meta]] = peers["n2"].events(hub, "models")
    assert data == src.read_bytes() and dest == "model.bin" and meta == {"round": 1}
    assert peers["n3"].events(hub, "other") == []

    stream = io.BytesIO(b"hello")
    assert broadcast_data(hub, "some/dir/h.txt", stream, domain="models") == 5
    assert stream.closed
    wait_until(lambda: len(peers["n2"].events(hub, "models")) == 2, 5)
    assert peers["n2"].events(hub, "models")[1] == [b"hello", "h.txt", None]
    assert (root / "h.txt").read_bytes() == b"hello"


def test_nanite_edge_cases(hub: actors.Site, peers: dict[str, SiteProcess],
                           tmp_path: Path) -> None:
    assert broadcast_file(hub, str(tmp_path / "missing"), domain="models") == "file not found"
    src = make_file(tmp_path / "x.bin", 100)
    assert broadcast_file(hub, str(src), domain="nobody-listens") == 0
    with pytest.raises(UnsafeName):
        broadcast_file(hub, str(src), domain="small", destination="../x")
    peers["n3"].call(hub, "zfs.compat.nanite:subscribe_to_files", "small", max_bytes=50,
                     callback={"$recorder": "small"})
    with pytest.raises(StreamRefused) as caught:
        broadcast_file(hub, str(src), domain="small")
    assert caught.value.site == "n3"


# ---------------------------------------------------------------- run in a child site


def flare_register(site: actors.Site, channel: str, topic: str, dest_dir: str,
                   record: Callable[..., Any], chunks: Callable[..., Any]) -> None:
    """Register as the FLARE docs show, recording what the callbacks get."""

    def stream_done_cb(stream_ctx: dict[str, Any], fl_ctx: Any, **kwargs: Any) -> None:
        record({"name": FileStreamer.get_file_name(stream_ctx),
                "location": FileStreamer.get_file_location(stream_ctx),
                "size": FileStreamer.get_file_size(stream_ctx),
                "round": stream_ctx.get("round"), "kwargs": kwargs,
                "fl_ctx_is_site": fl_ctx is site})

    def chunk_consumed_cb(stream_ctx: dict[str, Any], fl_ctx: Any, **kwargs: Any) -> None:
        chunks({"received": stream_ctx["zfs.bytes_received"], "round": stream_ctx.get("round")})

    FileStreamer.register_stream_processing(site, channel, topic, dest_dir=dest_dir,
                                            stream_done_cb=stream_done_cb,
                                            chunk_consumed_cb=chunk_consumed_cb,
                                            tag="weights-cb")
