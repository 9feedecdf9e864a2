"""The ``zfs-stream`` command (also ``python -m zfs``): run sites, push, share, pull, demo.

Every command is a thin edge over the library: it settles its settings
(:mod:`zfs.settings`), starts a site, calls :mod:`zfs.push` or :mod:`zfs.pull`, and
draws progress (:mod:`zfs.progress`). Errors a person can act on (an unknown site, a
refused or unreachable one, a bad RID, a missing file, a full disk, a wrong key) end
the command with one line on stderr and a non-zero exit; ``-v`` adds the traceback
and debug logs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import click

import actors
from zfs import settings as config
from zfs.errors import TransactionExpired, UnknownReference, ZfsError
from zfs.progress import Bars, wanted

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Common:
    """Options of the whole command, handed to every subcommand."""

    verbose: bool
    quiet: bool


class Interrupted(click.ClickException):
    """Ctrl-C or SIGTERM ended a transfer; exits with the shell's code for that."""

    exit_code = 130


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Logs to whatever ``sys.stderr`` is now (click's test runner swaps it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


#: Long-running commands, whose library warnings are worth reading as they come.
_SERVING = frozenset({"site", "share"})


def _setup_logging(verbose: bool, level: str) -> None:
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else level)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)  # the command's own events


def describe(err: BaseException) -> str:
    """Say in one line what went wrong and, where it helps, what to do."""
    if isinstance(err, UnknownReference):
        text = f"bad RID: {err} (check the RID printed by 'zfs-stream share')"
    elif isinstance(err, TransactionExpired):
        text = f"{err} (ask the owner to share the file again)"
    elif isinstance(err, actors.PeerRefused):
        text = f"site refused the link: {err} (wrong key, or its name is taken?)"
    elif isinstance(err, actors.UnknownSite):
        text = f"unknown site: {err}"
    elif isinstance(err, (ZfsError, actors.ActorsError)):
        text = str(err) or type(err).__name__
    elif isinstance(err, OSError):
        text = f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")
    else:
        text = f"{type(err).__name__}: {err} (run with -v for details)"
    if "No space left on device" in text:
        text = f"disk full: {text}"
    return " ".join(text.split())


class _Group(click.Group):
    """The command group: one-line errors, and ``keys`` loaded only when used."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as err:
            if isinstance(ctx.obj, Common) and ctx.obj.verbose:
                traceback.print_exc()
            raise click.ClickException(describe(err)) from err

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), "keys"])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return _keys_command() if cmd_name == "keys" else super().get_command(ctx, cmd_name)


def _keys_command() -> click.Command:
    """The security issue's ``keys`` group if it is installed, else a clear refusal."""
    try:
        from zfs.keys_cli import keys
    except ImportError as err:
        reason = str(err)

        @click.command(name="keys", context_settings={"ignore_unknown_options": True})
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        def unavailable(args: Sequence[str]) -> None:
            """Manage site keys (not available in this installation)."""
            raise click.ClickException(f"keys: not available ({reason})")
        return unavailable
    return keys  # type: ignore[no-any-return]


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logs, and tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, default=None, help="No progress bars [ZFS_QUIET].")
@click.pass_context
def main(ctx: click.Context, verbose: bool, quiet: bool | None) -> None:
    """Move large files between sites over ZeroMQ. Settings: ZFS_* (see zfs.settings)."""
    base = _settings(None)
    ctx.obj = Common(verbose=verbose, quiet=base.quiet if quiet is None else quiet)
    default_level = "WARNING" if ctx.invoked_subcommand in _SERVING else "CRITICAL"
    _setup_logging(verbose, base.log_level or default_level)


# ---- helpers of every command ---------------------------------------------------------

_METAVARS = {"bind": "ENDPOINT", "channel": "NAME", "topic": "NAME", "chunk_size": "SIZE",
             "window_chunks": "N", "retries": "N", "out_dir": "DIR", "keys_dir": "DIR",
             "allow_dir": "DIR"}


def _setting(option: str, setting: str, text: str) -> Callable[[Any], Any]:
    """A command-line option that fills ``setting`` (its variable shown in the help)."""
    return click.option(option, setting, metavar=_METAVARS.get(setting, "SECONDS"),
                        help=f"{text} [{config.env_name(setting)}]")


def _options(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def apply(func: Any) -> Any:
        for decorate in reversed(decorators):
            func = decorate(func)
        return func
    return apply


_KEYS = _options(_setting("--keys", "keys_dir", "Folder of this site's keypair: encrypt."),
                 _setting("--allow", "allow_dir", "Folder of trusted sites' public keys."))
_CONNECT_TIMEOUT = _setting("--connect-timeout", "connect_timeout", "Seconds to wait for a site.")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def _settings(common: Common | None, **explicit: Any) -> config.Settings:
    if common is not None and common.quiet:
        explicit["quiet"] = True
    try:
        return config.resolve(explicit)
    except ValueError as err:
        raise click.ClickException(str(err)) from None


def _peers(pairs: Sequence[str]) -> dict[str, str]:
    try:
        return dict(config.parse_peer(pair) for pair in pairs)
    except ValueError as err:
        raise click.ClickException(str(err)) from None


def _check_file(path: str) -> str:
    if not os.path.isfile(path):
        raise click.ClickException(f"no such file: {path}")
    if not os.access(path, os.R_OK):
        raise click.ClickException(f"cannot read file: {path}")
    return path


def _curve(name: str, settings: config.Settings) -> dict[str, Any]:
    """The site option that switches CURVE on, when a keys folder is set."""
    if settings.keys_dir is None:
        return {}
    from actors import security

    keys = settings.keys_dir
    if not os.path.exists(os.path.join(keys, f"{name}{security.SECRET_SUFFIX}")):
        raise click.ClickException(f"no keypair for site {name} in {keys} (make one with "
                                   f"'zfs-stream keys new {name} --dir {keys}', or give --name)")
    try:
        return {"curve": security.Curve.from_dirs(name, keys, settings.allow_dir)}
    except (OSError, ValueError, actors.ActorsError) as err:
        raise click.ClickException(f"cannot load the keys of site {name}: {err}") from None


@contextlib.contextmanager
def _site(name: str, settings: config.Settings, bind: str | None = None,
          connect: dict[str, str] | None = None) -> Iterator[actors.Site]:
    """Start a site for one command and stop it however the command ends."""
    if settings.chunk_size + (64 << 10) > settings.max_message_size:
        raise click.ClickException(f"chunk size {settings.chunk_size} does not fit in the "
                                   f"largest message ({settings.max_message_size} bytes): "
                                   "raise ZFS_MAX_MESSAGE_SIZE or lower --chunk-size")
    try:
        site = actors.Site(name, bind=bind, connect=connect, **settings.site_options(),
                           **_curve(name, settings))
        site.start()
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    except actors.SiteClosed as err:
        where = f"listen on {bind}" if bind else f"start site {name}"
        raise click.ClickException(f"cannot {where}: {err.__cause__ or err}") from None
    try:
        yield site
    finally:
        site.stop()


def _wait_for(site: actors.Site, peers: dict[str, str], settings: config.Settings,
              stop: threading.Event) -> None:
    """Wait until every peer said hello; Ctrl-C (``stop``) ends the wait at once."""
    hint = "; does it trust our key, and we its?" if settings.keys_dir else ""
    deadline = time.monotonic() + settings.connect_timeout
    for name, endpoint in peers.items():
        while True:
            try:
                site.wait_for(name, timeout=min(0.25, max(0.0, deadline - time.monotonic())))
                break
            except actors.WaitTimeout:
                if stop.is_set():
                    raise Interrupted(f"interrupted while waiting for site {name}") from None
                if time.monotonic() >= deadline:
                    raise click.ClickException(
                        f"cannot reach site {name} at {endpoint} (no answer within "
                        f"{settings.connect_timeout:g} s{hint})") from None
            except actors.PeerRefused as err:
                hint = "" if "key" in str(err) else " (wrong key, or its name is taken?)"
                raise click.ClickException(f"cannot link to site {name} at {endpoint}: "
                                           f"{err}{hint}") from None


@contextlib.contextmanager
def _until_signal() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while the block runs (main thread only)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {signum: signal.signal(signum, lambda *_: stop.set())
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _await(future: Future[Any], stop: threading.Event) -> Any:
    """The future's result, or None if ``stop`` was set first."""
    future.add_done_callback(lambda _: stop.set())
    while not stop.wait(0.5):
        pass
    return future.result() if future.done() else None


def _report(as_json: bool, record: dict[str, Any], text: str) -> None:
    seconds = record["seconds"]
    record["mb_per_s"] = record["size"] / seconds / 1e6 if seconds > 0 else 0.0
    click.echo(json.dumps(record) if as_json else
               f"{text} ({config.format_size(record['size'])}) in {seconds:.2f} s "
               f"({record['mb_per_s']:.1f} MB/s)")


# ---- serving pulls (site --share, share) ----------------------------------------------

def _log_downloaded(rid: str, to_site: str, status: str, file_name: str) -> None:
    log.info("%s: %s by %s (RID %s)", file_name, "downloaded" if status == "success"
             else f"download {status}", to_site, rid)


def _announce(s: actors.Site, files: Sequence[str], timeout: float,
              stop: threading.Event | None) -> tuple[Any, list[str]]:
    """Share ``files`` in one transaction; print their RIDs and ready-to-paste pulls.

    Returns the transaction and a list that receives the file names if it times out
    (``stop`` is then set too).
    """
    from zfs.pull import share as open_share

    expired: list[str] = []

    def on_timeout(tx_id: str, names: list[str]) -> None:
        expired.extend(names)
        log.info("share timed out; withdrawn: %s", ", ".join(names))
        if stop is not None:
            stop.set()
    tx = open_share(s, timeout=timeout, on_timeout=on_timeout)
    rids = [(tx.add_file(path, on_downloaded=_log_downloaded), path) for path in files]
    click.echo(f"sharing {len(rids)} file(s) from site {s.name} at {s.endpoint}; the share "
               f"ends after {timeout:g} s without downloads, or on Ctrl-C")
    for rid, path in rids:
        click.echo(f"RID {rid}  {path}")
    click.echo("download with:")
    for rid, _path in rids:
        click.echo(f"  zfs-stream pull {rid} --from {s.name}={s.endpoint}")
    sys.stdout.flush()
    return tx, expired


# ---- site -------------------------------------------------------------------------

def _receivers(receives: Sequence[str], dests: Sequence[str],
               default_dest: str) -> list[tuple[str, str, str]]:
    if dests and len(dests) not in (1, len(receives)):
        raise click.ClickException("give one --dest for all --receive, or one per --receive")
    plan = []
    for i, spec in enumerate(receives):
        channel, sep, topic = spec.partition("/")
        if not sep or not channel or not topic:
            raise click.ClickException(f"--receive wants CHANNEL/TOPIC, not {spec!r}")
        dest = dests[i] if len(dests) > 1 else (dests[0] if dests else default_dest)
        plan.append((channel, topic, os.path.abspath(dest)))
    return plan


def _log_received(got: Any) -> None:
    log.info("received %s (%d bytes) from %s on %s/%s: %s", got.name, got.size,
             got.sender_site, got.channel, got.topic, got.location)


@main.command()
@click.option("--name", required=True, help="This site's name.")
@_setting("--bind", "bind", "Endpoint to listen on.")
@click.option("--connect", "connects", multiple=True, metavar="SITE=ENDPOINT",
              help="A site to connect to (repeat).")
@click.option("--receive", "receives", multiple=True, metavar="CHANNEL/TOPIC",
              help="Accept pushes on this channel/topic (repeat).")
@click.option("--dest", "dests", multiple=True, metavar="DIR",
              help="Folder for received files: one for all, or one per --receive [ZFS_DEST].")
@click.option("--share", "shares", multiple=True, metavar="FILE",
              help="Also share this file for pull, as 'share' does (repeat).")
@_setting("--timeout", "share_timeout", "Seconds without downloads before shares end.")
@_KEYS
@click.pass_obj
def site(common: Common, name: str, connects: Sequence[str], receives: Sequence[str],
         dests: Sequence[str], shares: Sequence[str], **options: Any) -> None:
    """Run a site that receives pushes (and serves pulls) until SIGINT/SIGTERM.

    Prints 'READY NAME ENDPOINT' once it is up (then the RIDs of any --share).
    """
    from zfs.push import register_receiver

    settings = _settings(common, **options)
    plan = _receivers(receives, dests, settings.dest_dir)
    for path in shares:
        _check_file(path)
    with _until_signal() as stop, _site(name, settings, settings.bind, _peers(connects)) as s:
        for channel, topic, dest in plan:
            os.makedirs(dest, exist_ok=True)
            register_receiver(s, channel=channel, topic=topic, dest_dir=dest,
                              on_done=_log_received)
            log.info("receiving %s/%s into %s", channel, topic, dest)
        click.echo(f"READY {s.name} {s.endpoint or '-'}")
        sys.stdout.flush()
        tx, expired = _announce(s, shares, settings.share_timeout, None) if shares else (None, [])
        while not stop.wait(0.5):
            pass
        log.info("site %s stopping", name)
        if tx is not None and not expired:
            tx.close()


# ---- push -------------------------------------------------------------------------

@main.command()
@click.argument("file")
@click.option("--to", "to", required=True, metavar="SITE[,SITE...]", help="Target sites.")
@click.option("--connect", "connects", multiple=True, metavar="SITE=ENDPOINT",
              help="Where a target listens (repeat).")
@_setting("--channel", "channel", "Push channel.")
@_setting("--topic", "topic", "Push topic.")
@_setting("--chunk-size", "chunk_size", "Bytes per chunk, e.g. 1MiB.")
@_setting("--window", "window_chunks", "Chunks in flight.")
@_setting("--chunk-timeout", "chunk_timeout", "Seconds a target may take to ack.")
@_CONNECT_TIMEOUT
@click.option("--name", help="This side's site name (default push-<random>).")
@_KEYS
@_JSON
@click.pass_obj
def push(common: Common, file: str, to: str, connects: Sequence[str], name: str | None,
         as_json: bool, **options: Any) -> None:
    """Push FILE to every site of --to at once; all of them get it, or none does."""
    from zfs.push import push_file_async

    settings = _settings(common, **options)
    targets = list(dict.fromkeys(t.strip() for t in to.split(",") if t.strip()))
    if not targets:
        raise click.ClickException("--to names no site")
    peers = _peers(connects)
    for target in targets:
        if target not in peers:
            raise click.ClickException(f"unknown site {target}: say where it listens with "
                                       f"--connect {target}=ENDPOINT")
    size = os.path.getsize(_check_file(file))
    wanted_peers = {t: peers[t] for t in targets}
    with _until_signal() as stop, \
            _site(name or f"push-{secrets.token_hex(3)}", settings, None, wanted_peers) as s:
        _wait_for(s, wanted_peers, settings, stop)
        who = f"{name}: " if name else ""
        with Bars(wanted(settings.quiet), f"{who}push {os.path.basename(file)} ->",
                  tuple(targets), size) as bars:
            result = _await(push_file_async(
                s, targets, file, channel=settings.channel, topic=settings.topic,
                chunk_size=settings.chunk_size, window_chunks=settings.window_chunks,
                chunk_timeout=settings.chunk_timeout, on_progress=bars.update,
                secure=settings.keys_dir is not None), stop)
            if result is None:
                raise Interrupted("interrupted: the push was aborted")
            for target in targets:
                bars.finish(target, result.size)
    _report(as_json, {"op": "push", "name": result.name, "size": result.size,
                      "targets": list(result.targets), "seconds": result.seconds,
                      "digest": result.digest},
            f"pushed {result.name} to {', '.join(result.targets)}")


# ---- share and pull -------------------------------------------------------------------

@main.command()
@click.argument("files", nargs=-1, required=True)
@_setting("--bind", "bind", "Endpoint to listen on.")
@click.option("--name", default="owner", show_default=True, help="This site's name.")
@_setting("--timeout", "share_timeout", "Seconds without downloads before the share ends.")
@_KEYS
@click.pass_obj
def share(common: Common, files: Sequence[str], name: str, **options: Any) -> None:
    """Share FILES for pull; print one RID per file and the command that downloads it."""
    settings = _settings(common, **options)
    for path in files:
        _check_file(path)
    with _until_signal() as stop, _site(name, settings, settings.bind) as s:
        tx, expired = _announce(s, files, settings.share_timeout, stop)
        while not stop.wait(0.5):
            pass
        if not expired:
            tx.close()
            log.info("share ended")


@main.command()
@click.argument("rid")
@click.option("--from", "source", required=True, metavar="SITE=ENDPOINT",
              help="The owner site and where it listens.")
@_setting("--out", "out_dir", "Folder to download into.")
@_setting("--chunk-size", "chunk_size", "Bytes per request, e.g. 1MiB.")
@_setting("--window", "window_chunks", "Requests in flight.")
@_setting("--request-timeout", "request_timeout", "Seconds before a request is sent again.")
@_setting("--retries", "retries", "Times a request is sent again.")
@_CONNECT_TIMEOUT
@click.option("--name", help="This side's site name (default pull-<random>).")
@_KEYS
@_JSON
@click.pass_obj
def pull(common: Common, rid: str, source: str, name: str | None, as_json: bool,
         **options: Any) -> None:
    """Download the file RID from its owner; run it again after an interruption to resume."""
    from zfs.pull import download_async

    settings = _settings(common, **options)
    owner, endpoint = next(iter(_peers([source]).items()))
    with _until_signal() as stop, \
            _site(name or f"pull-{secrets.token_hex(3)}", settings, None, {owner: endpoint}) as s:
        _wait_for(s, {owner: endpoint}, settings, stop)
        who = f"{name}: " if name else ""
        with Bars(wanted(settings.quiet), who + "pull {name} <-") as bars:
            started = time.monotonic()
            path = _await(download_async(
                s, owner, rid, settings.out_dir, window_chunks=settings.window_chunks,
                chunk_size=settings.chunk_size, per_request_timeout=settings.request_timeout,
                retries=settings.retries, on_progress=bars.update,
                secure=settings.keys_dir is not None), stop)
            seconds = time.monotonic() - started
            if path is None:
                # Stopping the site (not an abort) keeps the partial file for a resume.
                raise Interrupted("interrupted: run the same command again to resume")
    _report(as_json, {"op": "pull", "path": path, "size": os.path.getsize(path),
                      "owner": owner, "seconds": seconds},
            f"downloaded {path} from {owner}")


# ---- demo and bench -------------------------------------------------------------------

@main.command()
@click.option("--size", default="64MiB", show_default=True, help="Size of the test file.")
@click.option("--dir", "workdir", help="Where to put the demo's files (default: a temp dir).")
@click.pass_obj
def demo(common: Common, size: str, workdir: str | None) -> None:
    """Start an owner and two recipient sites, push and pull a test file, show a table."""
    from zfs import demo as demo_module

    try:
        nbytes = config.parse_size(size)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    rows = demo_module.run(nbytes, workdir, quiet=common.quiet, verbose=common.verbose)
    click.echo(demo_module.table(rows))
    if not all(row.verified for row in rows):
        raise click.ClickException("a received file does not match the original")


@main.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def bench(ctx: click.Context, args: Sequence[str]) -> None:
    """Run the benchmark harness: python -m benchmarks ARGS (try 'bench --help')."""
    ctx.exit(subprocess.call([sys.executable, "-m", "benchmarks", *args]))
