"""The ``zfs-stream`` command: settings, each command, its one-line errors, and the demo.

Short commands run in this process through click's test runner; long-running ones
(``site``, ``share``) and the ones we interrupt run as real processes.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner, Result

from tests.support.procs import REPO_ROOT, wait_until
from zfs.cli import settings as config
from zfs.cli.main import main
from zfs.cli.demo import Party
from zfs.files import file_digest
from zfs.cli.bars import Bars, Report, wanted


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run the command in this process."""
    return CliRunner().invoke(main, list(args), env=env)


def assert_one_line_error(result: Result, *words: str) -> str:
    """The command failed with a single line on stderr, naming ``words``, no traceback."""
    assert result.exit_code not in (0, None), result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def start(name: str, *args: str, log: Path | None = None) -> Party:
    """Run ``python -m zfs ARGS`` as a child process."""
    log_file = open(log, "w") if log is not None else subprocess.DEVNULL
    try:
        return Party(name, [sys.executable, "-m", "zfs", *args], log_file)  # type: ignore[arg-type]
    finally:
        if log is not None:
            log_file.close()  # type: ignore[union-attr]


def free_endpoint() -> str:
    """An endpoint nobody listens on (the OS gave the port and we closed it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def data(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


@pytest.fixture
def alice(tmp_path: Path) -> Iterator[tuple[Party, str, Path]]:
    """A ``site`` process named alice that receives pushes on demo/files."""
    inbox = tmp_path / "alice-inbox"
    party = start("alice", "site", "--name", "alice", "--bind", "tcp://127.0.0.1:0",
                  "--receive", "demo/files", "--dest", str(inbox),
                  log=tmp_path / "alice.log")
    try:
        ready = party.wait_line(lambda line: line.startswith("READY"), 20)[-1].split()
        assert ready[:2] == ["READY", "alice"]
        yield party, ready[2], inbox
    finally:
        party.stop()


@pytest.fixture
def owner(tmp_path: Path) -> Iterator[tuple[Party, list[str], Path]]:
    """A ``share`` process sharing two files; yields it, its pull commands, and its log."""
    files = [data(tmp_path / "one.bin", 1 << 20), data(tmp_path / "two.bin", 300_000)]
    log = tmp_path / "owner.log"
    party = start("owner", "share", *map(str, files), "--bind", "tcp://127.0.0.1:0",
                  "--timeout", "60", log=log)
    try:
        lines = party.wait_line(lambda line: line.startswith("  zfs-stream pull")
                                and len(line.split()) == 5 and "two" not in line, 20)
        lines += party.wait_line(lambda line: line.startswith("  zfs-stream pull"), 20)
        yield party, [line.strip() for line in lines if "zfs-stream pull" in line], log
    finally:
        party.stop()


# ---- settings ---------------------------------------------------------------------

def test_settings_prefer_arguments_then_environment_then_defaults() -> None:
    env = {"ZFS_CHUNK_SIZE": "64KiB", "ZFS_WINDOW": "3", "ZFS_QUIET": "yes"}
    settings = config.resolve({"window_chunks": "5", "bind": None}, env)
    assert settings.window_chunks == 5
    assert settings.chunk_size == 64 << 10
    assert settings.quiet is True
    assert settings.bind == config.Settings().bind


def test_a_bad_setting_names_its_variable_or_option() -> None:
    with pytest.raises(ValueError, match="ZFS_CHUNK_SIZE"):
        config.resolve({}, {"ZFS_CHUNK_SIZE": "lots"})
    with pytest.raises(ValueError, match="--window"):
        config.resolve({"window_chunks": "0"}, {})


def test_every_setting_is_in_the_documented_table() -> None:
    doc = config.__doc__ or ""
    for field in config.Settings.__dataclass_fields__:
        row = next((line for line in doc.splitlines() if line.startswith(f"| {field} |")), "")
        assert row, f"setting {field} is not documented"
        assert f"`{config.env_name(field)}`" in row
        assert config.option_name(field) in row or "| — |" in row


def test_the_documented_defaults_are_the_real_ones() -> None:
    defaults = config.Settings()
    for line in (config.__doc__ or "").splitlines():
        cells = [cell.strip().strip("`") for cell in line.split("|")[1:-1]]
        if len(cells) != 5 or cells[0] not in config.PARSERS:
            continue
        if cells[3] in ("none", "the keys folder", "by command"):
            continue
        assert config.PARSERS[cells[0]](cells[3]) == getattr(defaults, cells[0]), cells[0]


def test_sizes_and_endpoints_read_the_way_people_write_them() -> None:
    assert config.parse_size("1MiB") == 1 << 20
    assert config.parse_size("10MB") == 10_000_000
    assert config.parse_size("4096") == 4096
    assert config.parse_peer("bob=127.0.0.1:5555") == ("bob", "tcp://127.0.0.1:5555")
    with pytest.raises(ValueError):
        config.parse_peer("bob")


# ---- progress ---------------------------------------------------------------------

class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_are_drawn_per_peer_on_a_terminal_only_unless_quiet() -> None:
    assert not wanted(False, io.StringIO())
    assert not wanted(True, FakeTerminal())
    assert wanted(False, FakeTerminal())
    screen = FakeTerminal()
    with Bars(True, "push f ->", ("alice", "bob"), 2048, stream=screen) as bars:
        bars.update(Report("f", 1024, 2048, "alice"))
        bars.finish("bob", 2048)
    text = screen.getvalue()
    assert "push f -> alice" in text and "push f -> bob" in text and "100%" in text
    with Bars(False, "x", ("alice",), 10, stream=screen) as silent:
        silent.update(Report("f", 5, 10, "alice"))
    assert screen.getvalue() == text


# ---- one-line errors ----------------------------------------------------------------

def test_push_of_a_missing_file_fails_in_one_line(tmp_path: Path) -> None:
    result = cli("push", str(tmp_path / "nope.bin"), "--to", "bob",
                 "--connect", "bob=tcp://127.0.0.1:9")
    assert_one_line_error(result, "no such file", "nope.bin")


def test_push_to_an_unknown_site_fails_in_one_line(tmp_path: Path) -> None:
    result = cli("push", str(data(tmp_path / "f", 10)), "--to", "bob")
    assert_one_line_error(result, "unknown site bob", "--connect bob=")


def test_push_to_an_unreachable_site_names_it(tmp_path: Path) -> None:
    endpoint = free_endpoint()
    result = cli("push", str(data(tmp_path / "f", 10)), "--to", "bob",
                 "--connect", f"bob={endpoint}", "--connect-timeout", "1")
    assert_one_line_error(result, "cannot reach site bob", endpoint)


def test_pull_from_an_unreachable_owner_names_it(tmp_path: Path) -> None:
    endpoint = free_endpoint()
    result = cli("pull", "some-rid", "--from", f"owner={endpoint}", "--out", str(tmp_path),
                 env={"ZFS_CONNECT_TIMEOUT": "1"})
    assert_one_line_error(result, "cannot reach site owner", endpoint)


def test_a_bad_environment_value_fails_in_one_line(tmp_path: Path) -> None:
    result = cli("push", str(data(tmp_path / "f", 10)), "--to", "bob",
                 "--connect", "bob=tcp://127.0.0.1:9", env={"ZFS_CHUNK_SIZE": "lots"})
    assert_one_line_error(result, "ZFS_CHUNK_SIZE")


def test_site_with_a_malformed_receive_fails_in_one_line() -> None:
    assert_one_line_error(cli("site", "--name", "x", "--receive", "no-topic"), "CHANNEL/TOPIC")


def test_keys_says_when_it_is_not_available() -> None:
    try:
        import zfs.cli.keys  # noqa: F401
    except ImportError:
        assert_one_line_error(cli("keys", "list"), "not available")
    else:
        assert cli("keys", "--help").exit_code == 0


def test_bench_runs_the_harness_and_its_help_speaks_of_this_command() -> None:
    for args in (["--help"], ["wan", "--help"]):
        result = subprocess.run([sys.executable, "-m", "zfs", "bench", *args], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: zfs-stream bench")
        assert "python -m benchmarks" not in result.stdout and "issue" not in result.stdout


# ---- site and push -------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_push_to_a_site_process_then_the_site_stops_cleanly(
        alice: tuple[Party, str, Path], tmp_path: Path) -> None:
    party, endpoint, inbox = alice
    source = data(tmp_path / "big.bin", (1 << 20) + 17)
    result = cli("push", str(source), "--to", "alice", "--connect", f"alice={endpoint}",
                 "--channel", "demo", "--topic", "files", "--chunk-size", "64KiB", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["size"] == source.stat().st_size and record["targets"] == ["alice"]
    assert file_digest(inbox / "big.bin") == file_digest(source)

    refused = cli("push", str(source), "--to", "alice", "--connect", f"alice={endpoint}",
                  "--topic", "not-registered")
    assert_one_line_error(refused, "alice")

    party.process.send_signal(signal.SIGINT)
    assert party.process.wait(15) == 0


@pytest.mark.timeout(60)
def test_push_over_curve_needs_keys_that_trust_each_other(tmp_path: Path) -> None:
    from actors import security

    trusted, stranger = tmp_path / "keys", tmp_path / "stranger"
    for name in ("alice", "pusher"):
        security.new_keypair(name, trusted)
    security.new_keypair("mallory", stranger)
    security.write_public_key("alice", security.load_public_key(trusted / "alice.key"),
                              stranger)
    party = start("alice", "site", "--name", "alice", "--keys", str(trusted), "--receive",
                  "a/b", "--dest", str(tmp_path / "in"), log=tmp_path / "alice.log")
    try:
        endpoint = party.wait_line(lambda line: line.startswith("READY"), 20)[-1].split()[2]
        source = data(tmp_path / "secret.bin", 100_000)
        ok = cli("push", str(source), "--to", "alice", "--connect", f"alice={endpoint}",
                 "--channel", "a", "--topic", "b", "--name", "pusher", "--keys", str(trusted))
        assert ok.exit_code == 0, ok.output
        assert file_digest(tmp_path / "in" / "secret.bin") == file_digest(source)
        refused = cli("push", str(source), "--to", "alice", "--connect", f"alice={endpoint}",
                      "--name", "mallory", "--keys", str(stranger), "--connect-timeout", "2")
        assert_one_line_error(refused, "site alice", "trust")
        keyless = cli("push", str(source), "--to", "alice", "--connect", f"alice={endpoint}",
                      "--keys", str(trusted))
        assert_one_line_error(keyless, "--name NAME or ZFS_NAME")
    finally:
        party.stop()


# ---- share and pull ------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_share_prints_pull_commands_that_work(owner: tuple[Party, list[str], Path],
                                              tmp_path: Path) -> None:
    party, commands, log = owner
    assert len(commands) == 2
    out = tmp_path / "downloads"
    for command in commands:
        _, _, rid, flag, source = command.split()
        assert flag == "--from"
        result = cli("pull", rid, "--from", source, "--out", str(out), "--json")
        assert result.exit_code == 0, result.output
        record = json.loads(result.stdout.strip().splitlines()[-1])
        path = Path(record["path"])
        assert file_digest(path) == file_digest(tmp_path / path.name)
        assert record["bytes_moved"] == record["size"] == path.stat().st_size
        assert record["mb_per_s"] == pytest.approx(record["bytes_moved"] / record["seconds"] / 1e6)
    wait_until(lambda: log.read_text().count("downloaded by") == 2, 10)

    bad = cli("pull", "not-a-real-rid", "--from", source, "--out", str(out))
    assert_one_line_error(bad, "bad RID")
    verbose = cli("-v", "pull", "not-a-real-rid", "--from", source, "--out", str(out))
    assert verbose.exit_code != 0 and "Traceback" in verbose.stderr

    party.process.send_signal(signal.SIGTERM)
    assert party.process.wait(15) == 0


@pytest.mark.timeout(60)
def test_a_site_serves_pulls_of_the_files_it_shares(tmp_path: Path) -> None:
    source = data(tmp_path / "served.bin", 200_000)
    party = start("hub", "site", "--name", "hub", "--share", str(source))
    try:
        lines = party.wait_line(lambda line: "zfs-stream pull" in line, 20)
        assert lines[0].startswith("READY hub tcp://127.0.0.1:")
        _, _, rid, _, where = lines[-1].split()
        result = cli("pull", rid, "--from", where, "--out", str(tmp_path / "out"))
        assert result.exit_code == 0, result.output
        assert file_digest(tmp_path / "out" / "served.bin") == file_digest(source)
        party.process.send_signal(signal.SIGTERM)
        assert party.process.wait(15) == 0
    finally:
        party.stop()


@pytest.mark.timeout(60)
def test_share_ends_by_itself_when_nobody_downloads(tmp_path: Path) -> None:
    log = tmp_path / "share.log"
    party = start("owner", "share", str(data(tmp_path / "f.bin", 1000)), "--timeout", "1",
                  log=log)
    try:
        party.wait_line(lambda line: "zfs-stream pull" in line, 20)
        assert party.process.wait(20) == 0
        assert "the share ended" in log.read_text()
    finally:
        party.stop()


@pytest.mark.timeout(90)
def test_an_interrupted_pull_resumes_when_run_again(tmp_path: Path) -> None:
    source = data(tmp_path / "large.bin", 48 << 20)
    owner_party = start("owner", "share", str(source), "--timeout", "60")
    try:
        line = owner_party.wait_line(lambda text: "zfs-stream pull" in text, 20)[-1]
        _, _, rid, _, where = line.split()
        out = tmp_path / "out"
        pull = start("pull", "pull", rid, "--from", where, "--out", str(out),
                     "--chunk-size", "16KiB", "--window", "1", log=tmp_path / "pull.log")
        try:
            partial = wait_until(lambda: next((p for p in out.glob(".zfs-partial/pull-*")
                                               if p.stat().st_size > 0), None), 20)
            pull.process.send_signal(signal.SIGINT)
            assert pull.process.wait(15) == 130
        finally:
            pull.stop()
        kept = partial.stat().st_size
        assert 0 < kept < source.stat().st_size
        assert "run the same command again" in (tmp_path / "pull.log").read_text()

        result = cli("pull", rid, "--from", where, "--out", str(out))
        assert result.exit_code == 0, result.output
        assert file_digest(out / "large.bin") == file_digest(source)
        assert not partial.exists()
    finally:
        owner_party.stop()


# ---- the demo --------------------------------------------------------------------------

@pytest.mark.timeout(90)
def test_the_demo_runs_end_to_end_and_cleans_up(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "zfs", "demo", "--size", "2MiB",
                             "--dir", str(tmp_path)], capture_output=True, text=True,
                            timeout=80)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(("push", "pull"))]
    assert len(rows) == 4 and all(row.endswith("verified") for row in rows), result.stdout
    assert "2.1 MB" in rows[0]
    assert list(tmp_path.iterdir()) == []
    leftovers = [p.pid for p in psutil.process_iter(["cmdline"])
                 if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []


@pytest.mark.timeout(90)
def test_pulls_that_listen_pull_with_peers_and_say_how_the_bytes_came(tmp_path: Path) -> None:
    src = data(tmp_path / "model.bin", 6 << 20)
    owner = start("owner", "share", str(src), "--bind", "tcp://127.0.0.1:0", "--timeout", "60",
                  log=tmp_path / "owner.log")
    pulls: list[Party] = []
    try:
        line = owner.wait_line(lambda text: text.startswith("  zfs-stream pull"), 20)[-1]
        _, _, rid, _, source = line.split()
        for i in range(3):
            pulls.append(start(f"p{i}", "pull", rid, "--from", source, "--out",
                               str(tmp_path / f"p{i}"), "--bind", "127.0.0.1:0", "--json"))
        for party in pulls:
            record = json.loads(party.wait_line(lambda text: text.startswith("{"), 60)[-1])
            assert record["route"] == "swarm" and party.process.wait(20) == 0
            assert record["from_owner"] + sum(record["from_peers"].values()) == record["size"]
            assert file_digest(record["path"]) == file_digest(src)
        plain = cli("pull", rid, "--from", source, "--out", str(tmp_path / "plain"), "--bind",
                    "127.0.0.1:0", "--no-swarm")
        assert plain.exit_code == 0 and "with peers" not in plain.stdout, plain.output
        swarm = cli("pull", rid, "--from", source, "--out", str(tmp_path / "swarm"), "--swarm")
        assert swarm.exit_code == 0 and "with peers:" in swarm.stdout, swarm.output
        owner.process.send_signal(signal.SIGTERM)
        sent = owner.wait_line(lambda text: text.startswith("sent "), 20)[-1]
        assert "copies of the files" in sent, sent
    finally:
        for party in [*pulls, owner]:
            party.stop()
