"""CurveZMQ between sites: keypairs in files, an allow-list of peers, a key per name.

With a :class:`Curve` in a site's options (``Site(..., curve=Curve.from_dirs(...))``)
every socket of the site speaks CURVE, so every link is encrypted, and:

- our ROUTER accepts a connection only if a ZAP handler (pyzmq's ThreadAuthenticator,
  on the site's own context) finds the client's public key in the allow-list; an
  unknown key fails the handshake, so nothing it sends ever reaches the site;
- the ZAP handler names each accepted connection after the site its key is
  registered for (the ``User-Id`` of every frame), and :meth:`Curve.check_name`
  refuses a HELLO claiming any other name: a trusted site cannot pose as another;
- each DEALER we connect pins the public key of the site it is meant to reach
  (``CURVE_SERVERKEY``), so another process listening on that endpoint fails the
  handshake instead of receiving our messages.

Key files use the format of ``zmq.auth.create_certificates`` (and czmq):
``NAME.key`` holds a public key, ``NAME.key_secret`` the keypair. An allow-list is
a folder of ``SITE.key`` files (the file name is the site name), or a mapping.
"""

from __future__ import annotations

import datetime
import logging
import os
import stat
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from actors.errors import ActorsError, UnknownSite
from actors.addresses import valid_site_name
from actors.ratelog import LogLimit

log = logging.getLogger(__name__)

#: The ZAP domain our ROUTERs ask about; with ZAP_ENFORCE_DOMAIN a missing handler
#: refuses every client instead of letting them all in.
ZAP_DOMAIN = "zfs"

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"

#: How often the same unknown key is logged, so a peer retrying every 100 ms
#: does not flood the log.
_LOG_EVERY = 60.0


class InsecureKeyFile(ActorsError):
    """A secret key file can be read by users other than its owner (or is malformed)."""


def new_keypair(name: str, directory: str | os.PathLike[str],
                force: bool = False) -> tuple[Path, Path]:
    """Write a new CURVE keypair for site ``name`` into ``directory``.

    The secret file is created with mode 0600 from the start (never widened and then
    narrowed), and a missing directory is created with mode 0700.

    Returns:
        (public_path, secret_path): ``directory/name.key`` and ``name.key_secret``.

    Raises:
        ValueError: ``name`` is not a usable site name.
        FileExistsError: a key of that name exists and ``force`` is false.
    """
    _check_key_file_name(name)
    folder = Path(directory)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    public, secret = zmq.curve_keypair()
    public_path = folder / f"{name}{PUBLIC_SUFFIX}"
    secret_path = folder / f"{name}{SECRET_SUFFIX}"
    if not force:
        for path in (public_path, secret_path):
            if path.exists():
                raise FileExistsError(f"{path} exists; not replaced (force=True, or --force)")
    _write_key_file(secret_path, 0o600, public, secret)
    _write_key_file(public_path, 0o644, public, None)
    return public_path, secret_path


def _check_key_file_name(name: str) -> None:
    """A key file is named after its site: refuse names that are not one, or hide it."""
    if not valid_site_name(name) or name.startswith(".") or os.sep in name:
        raise ValueError(f"not a usable site name for a key file: {name!r}")


def write_public_key(name: str, public_key: bytes | str,
                     directory: str | os.PathLike[str]) -> Path:
    """Write ``directory/name.key`` holding ``public_key``: trust ``name`` in an allow-list folder.

    Raises:
        ValueError: bad site name or key.
    """
    _check_key_file_name(name)
    key = _checked_key(public_key, f"key of {name!r}")
    folder = Path(directory)
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = folder / f"{name}{PUBLIC_SUFFIX}"
    _write_key_file(path, 0o644, key, None)
    return path


def _write_key_file(path: Path, mode: int, public: bytes, secret: bytes | None) -> None:
    kind = "Secret" if secret else "Public"
    lines = [f"#   ****  Generated on {datetime.datetime.now()} by zfs  ****",
             f"#   ZeroMQ CURVE {kind} Certificate", "", "metadata", "curve",
             f'    public-key = "{public.decode()}"']
    if secret:
        lines.append(f'    secret-key = "{secret.decode()}"')
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # a stale one, or a planted symlink: never written through
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode is narrowed by the umask, never widened
        os.write(fd, ("\n".join(lines) + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read_key_file(path: Path) -> tuple[bytes | None, bytes | None]:
    public = secret = None
    with open(path, "rb") as f:
        for line in f:
            key, sep, value = line.strip().partition(b"=")
            if not sep:
                continue
            value = value.strip(b" \t'\"")
            if key.strip() == b"public-key":
                public = _checked_key(value, path)
            elif key.strip() == b"secret-key":
                secret = _checked_key(value, path)
    return public, secret


def _checked_key(value: bytes | str, where: object) -> bytes:
    """A z85 CURVE key (40 characters for 32 bytes), as bytes."""
    key = value.encode() if isinstance(value, str) else bytes(value)
    try:
        ok = len(key) == 40 and len(z85.decode(key)) == 32
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise ValueError(f"{where}: not a z85 CURVE key")
    return key


def load_secret_key(path: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """Read a keypair file, refusing one that group or others may read.

    Returns:
        (public_key, secret_key), z85-encoded.

    Raises:
        InsecureKeyFile: the file's mode lets others read or write it, or it holds
            no keypair.
        OSError: it cannot be read.
    """
    path = Path(path)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise InsecureKeyFile(
            f"secret key file {path} has mode {mode:04o}; other users may read it. "
            f"Run: chmod 600 {path}")
    try:
        public, secret = _read_key_file(path)
    except ValueError as err:
        raise InsecureKeyFile(f"secret key file {path} is malformed: {err}") from err
    if public is None or secret is None:
        raise InsecureKeyFile(f"{path} holds no CURVE keypair")
    if zmq.curve_public(secret) != public:
        raise InsecureKeyFile(f"{path}: the public key does not belong to the secret key")
    return public, secret


def load_public_key(path: str | os.PathLike[str]) -> bytes:
    """Read the public key from a ``.key`` (or ``.key_secret``) file.

    Raises:
        ValueError: the file holds no valid public key.
    """
    public, _ = _read_key_file(Path(path))
    if public is None:
        raise ValueError(f"no public key in {path}")
    return public


def load_allow_dir(directory: str | os.PathLike[str]) -> dict[str, bytes]:
    """Read an allow-list folder: every ``SITE.key`` file trusts SITE's public key."""
    folder = Path(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"allow-list folder {folder} does not exist")
    return {path.name[:-len(PUBLIC_SUFFIX)]: load_public_key(path)
            for path in sorted(folder.glob(f"*{PUBLIC_SUFFIX}"))}


class _Authenticator(ThreadAuthenticator):
    """The ZAP handler of one site: allows the keys of the allow-list, names them."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], curve: Curve) -> None:
        super().__init__(context, log=logging.getLogger(f"{__name__}.zap"))
        self._curve = curve
        self._logged: dict[bytes, float] = {}
        self._log = LogLimit(log)  # made-up keys are each new: a bound on them all
        self.configure_curve_callback(ZAP_DOMAIN, self)

    def callback(self, domain: str, key: bytes) -> bool:
        """Whether the client key (z85) is in the allow-list (ZAP credentials hook)."""
        if self._curve.name_of(key) is not None:
            return True
        now = time.monotonic()
        if len(self._logged) > 1000:  # a peer making up keys must not grow this forever
            self._logged.clear()
        if now - self._logged.get(key, -_LOG_EVERY) >= _LOG_EVERY:
            self._logged[key] = now
            self._log.warning("site %s: refused a connection with unknown key %s",
                              self._curve.site_name, key.decode(errors="replace"))
        return False

    def curve_user_id(self, client_public_key: bytes) -> str:
        """Name an accepted connection after the site its key is registered for."""
        return self._curve.name_of(z85.encode(client_public_key)) or ""


class Curve:
    """A site's CURVE settings: its keypair, its allow-list, its ZAP handler.

    Pass it as ``Site(..., curve=curve)``; the site calls :meth:`start` and
    :meth:`stop`, and its I/O thread calls :meth:`configure` and :meth:`check_name`.
    One Curve serves one running site at a time.

    Args:
        site_name: the name of the site this keypair belongs to.
        public_key, secret_key: z85-encoded keys.
        allowed: ``{site_name: z85 public key}`` of every peer we trust, both to
            accept and to connect to.
        handshake_timeout: a connection that has not finished the CURVE handshake
            by then is dropped (ZMQ_HANDSHAKE_IVL), e.g. one that never speaks.
    """

    def __init__(self, site_name: str, public_key: bytes | str, secret_key: bytes | str,
                 allowed: Mapping[str, bytes | str], handshake_timeout: float = 10.0) -> None:
        self.site_name = site_name
        self.public_key = _checked_key(public_key, "public key")
        self._secret_key = _checked_key(secret_key, "secret key")
        if zmq.curve_public(self._secret_key) != self.public_key:
            raise ValueError("the public key does not belong to the secret key")
        self.handshake_timeout = handshake_timeout
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] = {}
        self._names: dict[bytes, str] = {}
        self._auth: _Authenticator | None = None
        for name, key in allowed.items():
            self.allow(name, key)

    @classmethod
    def from_dirs(cls, site_name: str, keys_dir: str | os.PathLike[str],
                  allow_dir: str | os.PathLike[str] | None = None,
                  **kwargs: Any) -> Curve:
        """Load ``keys_dir/SITE.key_secret`` and the allow-list folder (default: keys_dir).

        Raises:
            InsecureKeyFile: the secret key file is readable by others.
        """
        public, secret = load_secret_key(Path(keys_dir) / f"{site_name}{SECRET_SUFFIX}")
        allowed = load_allow_dir(keys_dir if allow_dir is None else allow_dir)
        allowed.pop(site_name, None)  # our own NAME.key sits in the default folder: not a peer
        return cls(site_name, public, secret, allowed, **kwargs)

    # -- the allow-list -------------------------------------------------------------

    def allow(self, name: str, public_key: bytes | str) -> None:
        """Trust ``public_key`` as the key of site ``name`` (also at run time).

        Raises:
            ValueError: bad name or key, or the key is already another site's.
        """
        if not valid_site_name(name):
            raise ValueError(f"bad site name in the allow-list: {name!r}")
        key = _checked_key(public_key, f"key of {name!r}")
        with self._lock:
            owner = self._names.get(key)
            if owner is not None and owner != name:
                raise ValueError(f"the key of {name!r} is already registered for {owner!r}")
            keys, names = dict(self._keys), dict(self._names)
            old = keys.pop(name, None)
            if old is not None:
                names.pop(old, None)
            keys[name], names[key] = key, name
            # Readers on other threads see either the old or the new table, never half.
            self._keys, self._names = keys, names

    def key_of(self, name: str) -> bytes | None:
        """The public key trusted for site ``name``, if any."""
        return self._keys.get(name)

    def name_of(self, public_key: bytes) -> str | None:
        """The site a trusted public key (z85) is registered for, if any."""
        return self._names.get(public_key)

    def peers(self) -> list[str]:
        """Names of the sites in the allow-list."""
        return sorted(self._keys)

    # -- hooks called by the site ---------------------------------------------------

    def start(self, context: zmq.Context[zmq.Socket[bytes]]) -> None:
        """Start the ZAP handler on the site's context (before its ROUTER binds)."""
        with self._lock:
            if self._auth is not None:
                raise RuntimeError("this Curve already serves a running site")
            self._auth = _Authenticator(context, self)
        self._auth.start()

    def stop(self) -> None:
        """Stop the ZAP handler (after the site's ROUTER is closed, before the context ends)."""
        with self._lock:
            auth, self._auth = self._auth, None
        if auth is not None:
            auth.stop()

    def configure(self, sock: zmq.Socket[bytes], server: bool, peer: str | None = None) -> None:
        """Make ``sock`` speak CURVE: a ROUTER as server, a DEALER as client of ``peer``.

        Raises:
            UnknownSite: (DEALER) ``peer`` is not in the allow-list: we would not
                know which key to expect.
            RuntimeError: (ROUTER) the ZAP handler is not running on this context,
                so clients would not be checked.
        """
        sock.setsockopt(zmq.HANDSHAKE_IVL, int(self.handshake_timeout * 1000))
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public_key)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self._secret_key)
        if server:
            auth = self._auth
            if auth is None or auth.context is not sock.context:
                raise RuntimeError("Curve.start(context) must run before the ROUTER binds")
            sock.setsockopt(zmq.CURVE_SERVER, 1)
            sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
            sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
            return
        server_key = self.key_of(peer) if peer is not None else None
        if server_key is None:
            raise UnknownSite(f"site {self.site_name} has no public key for {peer!r} in its "
                              "allow-list; cannot open an authenticated link to it")
        sock.setsockopt(zmq.CURVE_SERVERKEY, server_key)

    def check_name(self, name: str, head_frame: Any) -> str:
        """Why the connection ``head_frame`` came on may not claim ``name`` ("" if it may).

        Only a ``zmq.Frame`` tells its connection's key; anything else is not authenticated.
        """
        try:
            user = head_frame.get("User-Id") if isinstance(head_frame, zmq.Frame) else None
        except zmq.ZMQError:
            user = None
        if not user:
            return "the link is not authenticated"
        if user != name:
            return f"the key of this link belongs to site {user!r}, not {name!r}"
        return ""


