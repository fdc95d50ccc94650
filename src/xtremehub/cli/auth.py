"""``xhub auth`` (the embedded issuer, password hashes, the stored token) and ``xhub login``.

Example:
    >>> from click.testing import CliRunner
    >>> "--config" in CliRunner().invoke(auth_group, ["serve", "--help"]).output
    True
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

__all__ = ["auth_group", "login_command"]


@click.group("auth")
def auth_group() -> None:
    """Identities: run an embedded OpenID issuer, hash passwords, show the stored token."""


@auth_group.command("serve")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="Users, clients and roles (TOML).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8780, show_default=True, help="TCP port; 0 picks a free one.")
def serve_command(config_file: Path, host: str, port: int) -> None:
    """Serve an OpenID issuer (discovery, JWKS, token endpoint) for local use and tests."""
    from xtremehub.security.issuer import EmbeddedIssuer, IssuerConfig

    issuer = EmbeddedIssuer(IssuerConfig.from_toml(config_file), host=host, port=port)
    click.echo(f"xhub auth: issuer {issuer.url} (users and clients from {config_file})")
    sys.stdout.flush()
    try:
        issuer.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        issuer.stop()


@auth_group.command("hash-password")
@click.option("--rounds", type=click.IntRange(4, 16), default=12, show_default=True, help="bcrypt cost.")
def hash_password(rounds: int) -> None:
    """Print a bcrypt hash of a password or client secret read from the terminal (for the users file)."""
    from xtremehub.security.issuer import hash_secret

    secret = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    click.echo(hash_secret(secret, rounds=rounds))


@auth_group.command("token")
def token_command() -> None:
    """Print the stored access token (refreshed when near expiry), for scripts."""
    from xtremehub.security.login import StoredToken

    click.echo(StoredToken().token())


@click.command("login")
@click.option("--issuer", required=True, help="The OpenID Provider's issuer URL.")
@click.option("--client-id", default="xhub-cli", show_default=True, help="OAuth client id.")
@click.option(
    "--client-secret-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Client credentials grant: file holding the client secret (kept in that file, not copied).",
)
@click.option("--username", help="Password grant: the user (the password is asked for, never stored).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--scope", help="Scopes to ask for.")
def login_command(
    issuer: str,
    client_id: str,
    client_secret_file: Path | None,
    username: str | None,
    password_stdin: bool,
    scope: str | None,
) -> None:
    """Get a token from ISSUER and store it (mode 0600) for the Python API and the CLI."""
    from xtremehub.security.login import login, token_path

    password = None
    if username is not None:
        password = sys.stdin.readline().rstrip("\n") if password_stdin else click.prompt("Password", hide_input=True)
    stored = login(
        issuer,
        client_id=client_id,
        client_secret_file=client_secret_file,
        username=username,
        password=password,
        scope=scope,
    )
    expires = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stored["expires_at"]))
    click.echo(f"xhub login: token from {issuer} stored in {token_path()} (expires {expires})")
