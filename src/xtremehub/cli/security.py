"""``xhub security``: set up security for a machine or a small cluster.

``xhub security init DIR`` creates a local CA and certificates (see :mod:`xtremehub.security.pki`):
a server certificate for the ``--host`` names and addresses, and a client certificate for mutual
TLS. Private keys get mode 0600.

Example:
    >>> import tempfile
    >>> from click.testing import CliRunner
    >>> out = CliRunner().invoke(security_group, ["init", tempfile.mkdtemp(), "--host", "localhost"]).output
    >>> "server.pem" in out and "ca.pem" in out
    True
"""

from __future__ import annotations

from pathlib import Path

import click

from xtremehub.security.pki import init_pki

__all__ = ["security_group"]


@click.group("security")
def security_group() -> None:
    """Security set-up: certificates for TLS between components."""


@security_group.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="A DNS name or IP address of the server certificate (repeat; also comma-separated). "
    "Default: localhost, 127.0.0.1, ::1.",
)
@click.option("--client-name", default="client", show_default=True, help="Common name of an extra client certificate.")
@click.option("--force", is_flag=True, help="Issue new server and client certificates even if they exist.")
def init(directory: Path, hosts: tuple[str, ...], client_name: str, force: bool) -> None:
    """Create a local CA and TLS certificates in DIRECTORY (an existing CA is reused)."""
    names = [h.strip() for spec in hosts for h in spec.split(",") if h.strip()] or ["localhost", "127.0.0.1", "::1"]
    files = init_pki(directory, names, client_name=client_name, force=force)
    click.echo(f"CA:          {files.ca_cert}  (key {files.ca_key}, keep it offline)")
    click.echo(f"server:      {files.server_cert}  {files.server_key}  for {', '.join(names)}")
    click.echo(f"client:      {files.client_cert}  {files.client_key}")
