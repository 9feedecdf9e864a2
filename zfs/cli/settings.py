"""Settings of the command: explicit arguments first, then ZFS_* variables, then defaults.

Every setting the command reads is in this one table (the README copies it). An
option given on the command line wins; else the environment variable, if set; else
the default. Sizes take a unit: ``KiB``/``MiB``/``GiB`` (or ``K``/``M``/``G``) are
powers of 1024, ``KB``/``MB``/``GB`` powers of 1000; a bare number is bytes.
Rates are a size per second (``10MB``, ``10MB/s``, ``512KiB/s``; a bare number is bytes
per second). Durations are seconds. Flags take ``1``/``true``/``yes``/``on`` or
``0``/``false``/``no``/``off``. What the command prints (bars, summaries, tables) is in
decimal units: kB, MB, GB are powers of 1000, and rates are MB/s.

| setting | option | environment | default | what it is |
|---|---|---|---|---|
| name | `--name` | `ZFS_NAME` | by command | this site's name: required by `site`; `owner` for `share`; `push-`/`pull-` and random letters otherwise (with keys, the name of the keypair) |
| bind | `--bind` | `ZFS_BIND` | `tcp://127.0.0.1:0` | endpoint `site` and `share` listen on, and `pull --swarm` to serve its peers (a `pull` given it pulls with peers; port 0: the OS picks one; `host:port` means `tcp://host:port`) |
| channel | `--channel` | `ZFS_CHANNEL` | `default` | push channel (the receiving site must `--receive` it) |
| topic | `--topic` | `ZFS_TOPIC` | `default` | push topic |
| chunk_size | `--chunk-size` | `ZFS_CHUNK_SIZE` | `1MiB` | bytes per chunk message, push and pull |
| window_chunks | `--window` | `ZFS_WINDOW` | `8` | chunks in flight per target / per download |
| chunk_timeout | `--chunk-timeout` | `ZFS_CHUNK_TIMEOUT` | `30` | push: seconds a target may take to acknowledge a chunk |
| request_timeout | `--request-timeout` | `ZFS_REQUEST_TIMEOUT` | `10` | pull: seconds before a chunk request is sent again |
| retries | `--retries` | `ZFS_RETRIES` | `3` | pull: how often a timed-out request is sent again |
| connect_timeout | `--connect-timeout` | `ZFS_CONNECT_TIMEOUT` | `10` | seconds `push`/`pull` wait for a site to answer |
| share_timeout | `--timeout` | `ZFS_SHARE_TIMEOUT` | `300` | `share`: seconds without any download activity before the files are withdrawn |
| dest_dir | `--dest` | `ZFS_DEST` | `.` | `site`: folder for received pushes |
| out_dir | `--out` | `ZFS_OUT` | `.` | `pull`: folder for downloads (a rerun into it resumes) |
| bwlimit | `--bwlimit` | `ZFS_BWLIMIT` | none | bytes per second this command may send: `push` (all targets together), `site` and `share` (to all recipients together); for `pull`, the rate it asks the owner for. E.g. `10MB/s` |
| heartbeat_interval | — | `ZFS_HEARTBEAT_INTERVAL` | `1.0` | seconds between pings on an idle link |
| heartbeat_timeout | — | `ZFS_HEARTBEAT_TIMEOUT` | `6.0` | seconds of silence after which a site counts as lost (a peer that dies or closes its connection is noticed at once) |
| max_message_size | — | `ZFS_MAX_MESSAGE_SIZE` | `64MiB` | largest message a site accepts (must exceed the chunk size) |
| keys_dir | `--keys` | `ZFS_KEYS` | none | folder of this site's CURVE keypair (`NAME.key_secret`, see `zfs-stream keys`); set: every link is encrypted and peers must be trusted |
| allow_dir | `--allow` | `ZFS_ALLOW` | the keys folder | folder of the public keys (`SITE.key`) of the sites we trust |
| log_level | — | `ZFS_LOG_LEVEL` | by command | level of the library's log on stderr: `WARNING` for `site` and `share`; none for one-shot commands, whose error line says what failed (`-v` sets `DEBUG`) |
| quiet | `-q`/`--quiet` | `ZFS_QUIET` | `false` | no progress bars (there are none either when stderr is not a terminal) |
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

_RATE_SUFFIXES = ("/s", "ps")
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40, "kb": 10**3,
          "mb": 10**6, "gb": 10**9, "tb": 10**12}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})


def parse_size(text: str | int) -> int:
    """Read a size such as ``1MiB``, ``64K``, ``10MB`` or ``4096`` as bytes.

    Raises:
        ValueError: not a size.
    """
    if isinstance(text, int):
        return text
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(f"not a size: {text!r} (try 1MiB, 64KiB, 4096)")
    return int(float(match.group(1)) * _UNITS[unit])


def parse_rate(text: str | float) -> float:
    """Read a rate such as ``10MB/s``, ``10MB`` or ``512KiB/s`` as bytes per second.

    Raises:
        ValueError: not a rate above 0.
    """
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        stripped = text.strip()
        for suffix in _RATE_SUFFIXES:
            if stripped.lower().endswith(suffix):
                stripped = stripped[:-len(suffix)]
                break
        try:
            value = float(parse_size(stripped))
        except ValueError:
            raise ValueError(f"not a rate: {text!r} (try 10MB/s, 512KiB/s)") from None
    if not value > 0:
        raise ValueError(f"a rate must be above 0, not {text!r}")
    return value


#: The units of everything the command prints: decimal, as network rates are.
_DECIMAL = (("GB", 10**9), ("MB", 10**6), ("kB", 10**3))


def format_size(size: float) -> str:
    """Write ``size`` bytes in decimal units (``67.1 MB``; 1 MB is 10^6 bytes)."""
    for unit, scale in _DECIMAL:
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} B"


def format_rate(size: float, seconds: float) -> str:
    """Write ``size`` bytes moved in ``seconds`` as a rate in MB/s."""
    return f"{size / seconds / 1e6:.1f} MB/s" if seconds > 0 else "- MB/s"


def parse_flag(text: str | bool) -> bool:
    """Read a yes/no value."""
    if isinstance(text, bool):
        return text
    lowered = text.strip().lower()
    if lowered in _TRUE or lowered in _FALSE:
        return lowered in _TRUE
    raise ValueError(f"not a yes/no value: {text!r}")


def parse_level(text: str) -> str:
    """Read a logging level name."""
    level = text.strip().upper()
    if level not in _LEVELS:
        raise ValueError(f"not a log level: {text!r} (one of {', '.join(sorted(_LEVELS))})")
    return level


def parse_endpoint(text: str) -> str:
    """Read an endpoint; ``host:port`` alone means ``tcp://host:port``.

    Raises:
        ValueError: a TCP endpoint without a port, or with one outside 0-65535 (``*``,
            any free port, is fine where one listens).
    """
    endpoint = text.strip()
    if "://" not in endpoint:
        endpoint = "tcp://" + endpoint
    if not endpoint.startswith("tcp://"):
        return endpoint
    host, sep, port = endpoint[len("tcp://"):].rpartition(":")
    if not sep or not host:
        raise ValueError(f"endpoint {text!r} has no host and port (e.g. tcp://127.0.0.1:5555)")
    if port != "*" and not (port.isdigit() and int(port) <= 65535):
        raise ValueError(f"endpoint {text!r}: the port must be a number from 0 to 65535")
    return endpoint


def parse_peer(text: str) -> tuple[str, str]:
    """Read ``NAME=ENDPOINT`` (a site and where it listens).

    Raises:
        ValueError: not of that form.
    """
    name, sep, endpoint = text.partition("=")
    if not sep or not name.strip() or not endpoint.strip():
        raise ValueError(f"expected SITE=ENDPOINT (e.g. alice=tcp://127.0.0.1:5555), not {text!r}")
    return name.strip(), parse_endpoint(endpoint)


def _positive(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def checked(text: Any) -> Any:
        value = parse(text)
        if value <= 0:
            raise ValueError(f"must be above 0, not {text!r}")
        return value
    return checked


def _count(text: Any) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"must be 0 or more, not {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    """The resolved settings of one command; see the table in the module docstring."""

    name: Optional[str] = None  # None: the command decides
    bind: str = "tcp://127.0.0.1:0"
    channel: str = "default"
    topic: str = "default"
    chunk_size: int = 1 << 20
    window_chunks: int = 8
    chunk_timeout: float = 30.0
    request_timeout: float = 10.0
    retries: int = 3
    connect_timeout: float = 10.0
    share_timeout: float = 300.0
    dest_dir: str = "."
    out_dir: str = "."
    bwlimit: Optional[float] = None
    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 6.0
    max_message_size: int = 64 << 20
    keys_dir: Optional[str] = None
    allow_dir: Optional[str] = None
    log_level: Optional[str] = None  # None: the command decides
    quiet: bool = False

    def site_options(self) -> dict[str, Any]:
        """The keyword arguments of ``actors.Site`` these settings decide."""
        return {"heartbeat_interval": self.heartbeat_interval,
                "heartbeat_timeout": self.heartbeat_timeout,
                "max_message_size": self.max_message_size}


#: How each setting is read from text (an option or a variable); env name = ZFS_ + upper.
PARSERS: Mapping[str, Callable[[Any], Any]] = {
    "name": str, "bind": parse_endpoint, "channel": str, "topic": str,
    "chunk_size": _positive(parse_size), "window_chunks": _positive(int),
    "chunk_timeout": _positive(float), "request_timeout": _positive(float),
    "retries": _count, "connect_timeout": _positive(float),
    "share_timeout": _positive(float), "dest_dir": str, "out_dir": str,
    "bwlimit": parse_rate,
    "heartbeat_interval": _positive(float), "heartbeat_timeout": _positive(float),
    "max_message_size": _positive(parse_size), "keys_dir": str, "allow_dir": str,
    "log_level": parse_level, "quiet": parse_flag,
}

#: Variables whose name is not simply ZFS_ + the setting's name in capitals.
_ENV_NAMES: Mapping[str, str] = {"window_chunks": "ZFS_WINDOW", "dest_dir": "ZFS_DEST",
                                 "out_dir": "ZFS_OUT", "keys_dir": "ZFS_KEYS",
                                 "allow_dir": "ZFS_ALLOW"}
#: Options whose name is not simply -- + the setting's name with dashes.
_OPTION_NAMES: Mapping[str, str] = {"window_chunks": "--window", "dest_dir": "--dest",
                                    "out_dir": "--out", "share_timeout": "--timeout",
                                    "keys_dir": "--keys", "allow_dir": "--allow"}


def env_name(setting: str) -> str:
    """The environment variable of ``setting`` (``chunk_size`` -> ``ZFS_CHUNK_SIZE``)."""
    return _ENV_NAMES.get(setting, "ZFS_" + setting.upper())


def option_name(setting: str) -> str:
    """The command-line option of ``setting`` (``chunk_size`` -> ``--chunk-size``)."""
    return _OPTION_NAMES.get(setting, "--" + setting.replace("_", "-"))


def resolve(explicit: Mapping[str, Any] | None = None,
            environ: Mapping[str, str] | None = None) -> Settings:
    """Settle every setting: an explicit value (not None), else its variable, else the default.

    Raises:
        ValueError: a value does not parse; the message names the option or variable.
        KeyError: ``explicit`` names no setting.
    """
    explicit = {k: v for k, v in (explicit or {}).items() if v is not None}
    environ = os.environ if environ is None else environ
    unknown = sorted(set(explicit) - set(PARSERS))
    if unknown:
        raise KeyError(f"no such settings: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        name, parse = field.name, PARSERS[field.name]
        if name in explicit:
            source, raw = option_name(name), explicit[name]
        elif env_name(name) in environ:
            source, raw = env_name(name), environ[env_name(name)]
        else:
            continue
        try:
            values[name] = parse(raw)
        except ValueError as err:
            raise ValueError(f"bad {source} value {raw!r}: {err}") from None
    return Settings(**values)
