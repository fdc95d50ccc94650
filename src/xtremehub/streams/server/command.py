"""``xhub streams serve``: run the stream server on a data directory.

The server owns the data directory (the embedded store and controller of
``StreamManager.embedded``) and serves them to many clients over TCP until SIGTERM or SIGINT,
then shuts down gracefully: it stops accepting, answers the requests already running and
closes the store. ``--port 0`` picks a free port; the first line printed names the URL.

This module is the server's entry point: ``python -m xtremehub.streams.server`` runs it alone,
and the CLI attaches it to the ``xhub streams`` group (``streams_group.add_command(serve)``);
it does not import :mod:`xtremehub.cli` (the CLI calls into the server, not the reverse).

Example:
    >>> from click.testing import CliRunner
    >>> "--lts" in CliRunner().invoke(serve, ["--help"]).output
    True
"""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from xtremehub.config import Settings
from xtremehub.errors import ConfigError
from xtremehub.security.authz import Authorizer
from xtremehub.security.identity import TokenValidator
from xtremehub.streams import StreamManager
from xtremehub.streams.server import ServerConfig, StreamServer

if TYPE_CHECKING:
    from xtremehub.security.audit import AuditLog

__all__ = ["serve"]

log = logging.getLogger(__name__)


T = TypeVar("T")


@click.command("serve")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), help="Data directory (default: the group's).")
@click.option("--lts", help="Long-term storage URL: a directory, file://, s3://bucket/prefix (default: under --data).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=9090, show_default=True, help="TCP port; 0 picks a free one.")
@click.option(
    "--maintenance-interval",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds between scaling, retention and timeout rounds.",
)
@click.option(
    "--shutdown-grace", type=float, default=10.0, show_default=True, help="Seconds shutdown waits for running requests."
)
@click.option(
    "--switch-interval",
    type=float,
    default=0.0005,
    show_default=True,
    help="Seconds a Python thread may hold the GIL while another waits (sys.setswitchinterval; "
    "Python's default 0.005 adds up to that much to every hand-off between the event loop, "
    "the group commit and tiering).",
)
@click.option(
    "--loop",
    "loop_kind",
    type=click.Choice(["auto", "uvloop", "asyncio"]),
    default="auto",
    show_default=True,
    help="Event loop: uvloop (libuv, less Python per frame) when installed with auto, else asyncio's own.",
)
@click.option("--oidc-issuer", help="Require bearer tokens from this OpenID Provider (its issuer URL).")
@click.option("--oidc-audience", default="xtremehub", show_default=True, help="The audience tokens must carry.")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), help="Serve TLS with this certificate (PEM).")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), help="The certificate's private key (PEM).")
@click.option(
    "--tls-client-ca", type=click.Path(dir_okay=False, exists=True), help="Require client certificates (mTLS)."
)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    help="Authorise every request with the Cedar policies (*.cedar) in this directory or storage URL "
    "(repeatable; default: any valid token may do anything).",
)
@click.option("--audit-log", help="Append every authorisation decision to this hash-chained audit log (file or URL).")
@click.option(
    "--audit-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Ed25519 key signing the audit checkpoints (created if missing; default: <data>/audit.key).",
)
@click.option("--encrypt", is_flag=True, help="Encrypt the WAL and LTS chunks with the [encryption] key source.")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback address without token validation and TLS.")
@click.pass_context
def serve(
    ctx: click.Context,
    data: Path | None,
    lts: str | None,
    host: str,
    port: int,
    maintenance_interval: float,
    shutdown_grace: float,
    switch_interval: float,
    loop_kind: str,
    oidc_issuer: str | None,
    oidc_audience: str,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
    policies: tuple[str, ...],
    audit_log: str | None,
    audit_key: Path | None,
    encrypt: bool,
    insecure: bool,
) -> None:
    """Serve the stream store in DATA to clients at tcp://HOST:PORT (StreamManager("tcp://...")."""
    if switch_interval > 0:
        sys.setswitchinterval(switch_interval)  # the process is ours: a server, not a library
    group = ctx.find_object(dict) or {}
    if data is None:
        data = group.get("data") or Settings.load(config_file=None).home / "streams"
    lts = lts or group.get("lts")
    settings = group.get("settings") or (ctx.obj if isinstance(ctx.obj, Settings) else None)
    extra: dict[str, Any] = {} if settings is None else {"settings": settings}  # --config and env reach the LTS
    if encrypt:
        extra["encryption"] = (settings or Settings.load(config_file=None)).encryption
    audit = _audit(audit_log, audit_key or data / "audit.key")
    config = ServerConfig(
        host=host,
        port=port,
        shutdown_grace=shutdown_grace,
        ssl=server_tls(tls_cert, tls_key, tls_client_ca),
        validator=_validator(oidc_issuer, oidc_audience),
        authorizer=_authorizer(policies, audit),
        insecure=insecure,
    )
    try:
        config.check_security()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    manager = StreamManager.embedded(data, lts, maintenance_interval=maintenance_interval, **extra)
    try:
        server = StreamServer(manager.store, manager.controller, config)

        def started(srv: StreamServer) -> None:
            # What startup made (modules, config, the store's state) leaves the collector's scans:
            # full collections, which stop every serving thread, then walk only what serving makes.
            gc.collect()  # startup's cyclic garbage is freed, not frozen for the life of the process
            gc.freeze()
            click.echo(f"xhub streams: serving {data} on {srv.url}")
            sys.stdout.flush()

        run_loop(server.serve_until_signal(on_started=started), loop_kind)
    finally:
        manager.close()
        if audit is not None:
            audit.close()
    log.info("stream store in %s closed", data)


def run_loop(main: Coroutine[Any, Any, T], kind: str = "auto") -> T:
    """Run ``main`` on uvloop (``"uvloop"``, or ``"auto"`` when it is installed) or asyncio's loop.

    uvloop runs the transports, the selector and the callback queue in C: per frame the server
    then spends its Python time in its own code rather than in the event loop's.

    Example:
        >>> async def answer() -> int:
        ...     return 42
        >>> run_loop(answer(), "asyncio")
        42
    """
    if kind != "asyncio":
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                main.close()
                raise click.ClickException("--loop uvloop: uvloop is not installed (pip install uvloop)") from None
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def _audit(location: str | None, key: Path) -> AuditLog | None:
    """The audit log of ``--audit-log``, if given."""
    if not location:
        return None
    from xtremehub.security.audit import AuditConfig, AuditLog

    return AuditLog(AuditConfig(location=location, signing_key=key))


def _authorizer(policies: tuple[str, ...], audit: AuditLog | None) -> Authorizer | None:
    """Cedar policies of ``--policy`` (audited to ``audit`` when given), if any."""
    if not policies:
        return None
    from xtremehub.security.policy import PolicyConfig, build_authorizer

    return build_authorizer(PolicyConfig(sources=policies), audit)


def server_tls(cert: str | None, key: str | None, client_ca: str | None = None) -> ssl.SSLContext | None:
    """A server TLS context from PEM files (None without ``cert``); ``client_ca`` requires client certificates."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise click.UsageError("--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _validator(issuer: str | None, audience: str) -> TokenValidator | None:
    if issuer is None:
        return None
    try:
        from xtremehub.security.oidc import OIDCConfig, OIDCValidator
    except ImportError as exc:
        needs = "--oidc-issuer needs the security extra (pip install 'xtremehub[security]')"
        raise click.ClickException(f"{needs}: {exc}") from None

    return OIDCValidator(OIDCConfig(issuer=issuer, audience=audience))
