"""``zfs-stream push`` and ``pull`` between clients that reach each other only through a
server: the commands link to the server (``--connect``) and name the far client."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.zfs.cli.conftest import data, one_line_error, serve, zfs
from zfs.files import file_digest


@pytest.mark.timeout(60)
def test_a_client_pushes_to_and_pulls_from_another_client_through_the_server(
        tmp_path: Path) -> None:
    shared = data(tmp_path / "shared.bin", 2_000_000)
    with serve("server", "site", "--name", "server", ready="READY",
               log=tmp_path / "server.log") as (_server, lines):
        server = f"server={lines[-1].split()[2]}"
        with serve("client2", "site", "--name", "client2", "--connect", server,
                   "--receive", "demo/files", "--dest", str(tmp_path / "inbox"),
                   "--share", str(shared), ready="zfs-stream pull",
                   log=tmp_path / "client2.log") as (_client2, lines):
            rid = next(line.split()[1] for line in lines if line.startswith("RID "))
            pushed = zfs("push", str(data(tmp_path / "f.bin", 3_000_000)), "--to", "client2",
                         "--connect", server, "--name", "client1", "--channel", "demo",
                         "--topic", "files")
            assert pushed.returncode == 0, pushed.stderr
            assert "pushed f.bin to client2" in pushed.stdout
            assert file_digest(tmp_path / "inbox" / "f.bin") == file_digest(tmp_path / "f.bin")
            pulled = zfs("pull", rid, "--from", "client2", "--connect", server,
                         "--out", str(tmp_path / "out"))
            assert pulled.returncode == 0, pulled.stderr
            assert file_digest(tmp_path / "out" / "shared.bin") == file_digest(shared)
            one_line_error(zfs("push", str(tmp_path / "f.bin"), "--to", "client9",
                               "--connect", server, "--connect-timeout", "1"),
                           "cannot reach site client9 through server")
