"""``zfs-stream keys``: make a site's CURVE keypair, show it, and trust other sites' keys.

A thin edge over :mod:`actors.security`: the files it writes are the ones
``Curve.from_dirs(name, keys_dir, allow_dir)`` reads. Secret key files are created
with mode 0600 and are never printed.
"""

from __future__ import annotations

from pathlib import Path

import click

from actors import security


@click.group(name="keys")
def keys() -> None:
    """Manage CURVE keys: one keypair per site, and a folder of trusted public keys."""


@keys.command(name="new")
@click.argument("name")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False),
              help="Folder for NAME.key (public) and NAME.key_secret (mode 0600).")
@click.option("--force", is_flag=True, help="Replace an existing keypair of that name.")
def new(name: str, directory: str, force: bool) -> None:
    """Write a new keypair for site NAME; prints the public key file to hand to peers."""
    try:
        public_path, secret_path = security.new_keypair(name, directory, force=force)
    except (ValueError, FileExistsError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"public key: {public_path}  (copy it into each peer's allow folder)")
    click.echo(f"secret key: {secret_path}  (mode 0600; never copy it anywhere)")
    click.echo(security.load_public_key(public_path).decode())


@keys.command(name="show")
@click.argument("name")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False),
              help="The folder given to 'keys new'.")
def show(name: str, directory: str) -> None:
    """Print site NAME's public key, after checking its secret key file is private."""
    secret_path = Path(directory) / f"{name}{security.SECRET_SUFFIX}"
    public_path = Path(directory) / f"{name}{security.PUBLIC_SUFFIX}"
    try:
        if secret_path.exists():
            public, _ = security.load_secret_key(secret_path)
        else:
            public = security.load_public_key(public_path)
    except (OSError, ValueError, security.InsecureKeyFile) as err:
        raise click.ClickException(str(err)) from err
    click.echo(public.decode())


@keys.command(name="trust")
@click.argument("key_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--allow", "allow_dir", required=True, type=click.Path(file_okay=False),
              help="The allow folder of the site that should trust this key.")
@click.option("--name", help="The site the key belongs to (default: the file's name).")
def trust(key_file: str, allow_dir: str, name: str | None) -> None:
    """Trust the public key in KEY_FILE as site NAME: copy it into the allow folder."""
    path = Path(key_file)
    if name is None:
        name = path.name.split(".key")[0]
    try:
        written = security.write_public_key(name, security.load_public_key(path), allow_dir)
    except (OSError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"trusted {name}: {written}")


@keys.command(name="list")
@click.option("--allow", "allow_dir", required=True, type=click.Path(file_okay=False),
              help="An allow folder.")
def list_(allow_dir: str) -> None:
    """List the sites an allow folder trusts, with their public keys."""
    try:
        allowed = security.load_allow_dir(allow_dir)
    except (OSError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    for site_name, key in allowed.items():
        click.echo(f"{site_name}\t{key.decode()}")
