"""Run a site as a long-running process until SIGINT or SIGTERM.

    python -m actors --name NAME --bind ENDPOINT [--connect NAME=ENDPOINT ...]
                     [--spawn NAME=module:Class ...] [--heartbeat-interval S]
                     [--heartbeat-timeout S] [--option NAME=VALUE ...]

Once the site is up it prints ``READY <name> <endpoint>`` on stdout, so a parent
process (a test, a benchmark, a supervisor) knows the port the OS chose.
"""

from __future__ import annotations

import argparse
import importlib
import math
import logging
import signal
import sys
import threading
from typing import Any

from actors.options import SiteOptions
from actors.process import tune_malloc
from actors.site import Site


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _load_class(spec: str) -> Any:
    module_name, sep, class_name = spec.partition(":")
    if not sep:
        raise SystemExit(f"--spawn wants NAME=module:Class, got {spec!r}")
    return getattr(importlib.import_module(module_name), class_name)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(prog="python -m actors", description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--bind", default=None)
    parser.add_argument("--connect", type=_pair, action="append", default=[])
    parser.add_argument("--spawn", type=_pair, action="append", default=[])
    parser.add_argument("--keys", default=None,
                        help="folder with this site's CURVE keypair (turns security on)")
    parser.add_argument("--allow", default=None,
                        help="folder of trusted sites' public keys (default: --keys)")
    parser.add_argument("--heartbeat-interval", type=_seconds, default=None,
                        help="seconds between pings on an idle link (default 1)")
    parser.add_argument("--heartbeat-timeout", type=_seconds, default=None,
                        help="seconds of silence after which a peer counts as lost "
                             "(default 6; longer for links that stall)")
    parser.add_argument("--option", type=_pair, action="append", default=[],
                        help="any numeric site option (see actors.options.SiteOptions), "
                             "e.g. max_message_size=8388608")
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


def _options(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Numeric site options from ``NAME=VALUE`` pairs, typed as SiteOptions declares them."""
    defaults = SiteOptions()
    options: dict[str, Any] = {}
    for name, text in pairs:
        default = getattr(defaults, name, None)
        if not isinstance(default, (int, float)) or isinstance(default, bool):
            raise SystemExit(f"python -m actors: --option {name}: not a numeric site option")
        try:
            options[name] = type(default)(text)
        except ValueError:
            raise SystemExit(f"python -m actors: --option {name}: not a number: {text!r}"
                             ) from None
    return options


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:  # nan fails it too
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the site until a signal asks it to stop; exit 0 after a clean stop."""
    args = parse_args(argv)
    tune_malloc()
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    options: dict[str, Any] = _options(args.option)
    options.update({
        name: value for name, value in (("heartbeat_interval", args.heartbeat_interval),
                                        ("heartbeat_timeout", args.heartbeat_timeout))
        if value is not None})
    if args.keys:
        from actors.security import Curve
        options["curve"] = Curve.from_dirs(args.name, args.keys, args.allow)
    try:
        site = Site(args.name, bind=args.bind, connect=dict(args.connect), **options)
    except ValueError as err:  # a bad name, endpoint or setting: say which, no traceback
        raise SystemExit(f"python -m actors: {err}") from None
    site.start()
    try:
        for actor_name, spec in args.spawn:
            site.spawn(_load_class(spec), actor_name)
        print(f"READY {site.name} {site.endpoint or '-'}", flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        site.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
