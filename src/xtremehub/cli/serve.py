"""``xhub serve``: the REST API and the web cockpit on one port, on the embedded defaults.

With no option it serves the embedded catalog (``<home>/catalog.db``), the stream store under
``<home>/streams`` and the jobs of ``<home>/optimizer/telemetry.sqlite`` on
``http://127.0.0.1:8000`` to the local single user (no token); it prints its URL first.
``--oidc-issuer`` turns bearer tokens on, ``--policy`` authorises each request with Cedar
policies (together with the usage policies approved access requests write to the catalog's
policy store, ``[catalog] policies`` or ``<home>/policies``: re-read every 2 seconds, and at once
after an approval or revocation through this server); every decision and catalog change is
recorded in the hash-chained audit log (``--audit-log``, default the catalog's ``[catalog] audit_log``:
``<home>/audit/catalog.log``).
``--streams tcp://...`` of a stream server
that requires tokens needs the web server's own credential: ``--streams-client-id`` and
``--streams-client-secret-file`` (client credentials at the issuer) or ``--streams-token-file``.
Settings: options > ``XHUB_WEB_*`` > the ``[web]`` table of the config file (see :mod:`xtremehub.web.config`).

Example:
    >>> from click.testing import CliRunner
    >>> "--oidc-issuer" in CliRunner().invoke(serve, ["--help"]).output
    True
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from xtremehub.config import Settings
from xtremehub.errors import ConfigError
from xtremehub.security._net import is_loopback_host

if TYPE_CHECKING:
    from xtremehub.security.authz import Authorizer

__all__ = ["policy_authorizer", "security", "serve"]

log = logging.getLogger(__name__)


@click.command("serve")
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="TCP port (default 8000); 0 picks a free one.")
@click.option("--catalog", "catalog_url", help="Catalog database URL (default: [catalog] url or <home>/catalog.db).")
@click.option("--streams", help="Stream server URL (tcp://...) or data directory (default <home>/streams).")
@click.option(
    "--streams-client-id",
    help="The web server's client id at the OpenID Provider (client credentials), for a stream server needing tokens.",
)
@click.option(
    "--streams-client-secret-file",
    type=click.Path(dir_okay=False),
    help="File holding that client's secret (read at each token request).",
)
@click.option(
    "--streams-token-file",
    type=click.Path(dir_okay=False),
    help="Instead: a file holding the stream-server token (or xhub login's token.json), read at each connection.",
)
@click.option("--oidc-issuer", help="Require bearer tokens from this OpenID Provider (its issuer URL).")
@click.option("--oidc-audience", help="The audience tokens must carry (default xtremehub).")
@click.option("--policy", "policies", multiple=True, help="Cedar policy directory or URL (repeatable).")
@click.option(
    "--audit-log",
    help="Hash-chained audit log of every decision and catalog change (default <home>/audit/catalog.log).",
)
@click.option(
    "--audit-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Ed25519 key signing the audit checkpoints (created if missing; default <home>/audit.key).",
)
@click.option("--max-body-bytes", type=int, help="Largest request body accepted (default 1 MiB).")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback address without token validation.")
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    catalog_url: str | None,
    streams: str | None,
    streams_client_id: str | None,
    streams_client_secret_file: str | None,
    streams_token_file: str | None,
    oidc_issuer: str | None,
    oidc_audience: str | None,
    policies: tuple[str, ...],
    audit_log: str | None,
    audit_key: Path | None,
    max_body_bytes: int | None,
    insecure: bool,
) -> None:
    """Serve the REST API (/api/v1, docs at /api/v1/docs) and the cockpit; print the URL."""
    from xtremehub.web import WebConfig

    settings = ctx.obj if isinstance(ctx.obj, Settings) else Settings.load()
    config_file = ctx.find_root().params.get("config_file")
    try:
        config = WebConfig.load(
            config_file=config_file if config_file is not None else "default",
            host=host,
            port=port,
            catalog=catalog_url,
            streams=streams,
            streams_client_id=streams_client_id,
            streams_client_secret_file=streams_client_secret_file,
            streams_token_file=streams_token_file,
            oidc_issuer=oidc_issuer,
            oidc_audience=oidc_audience,
            policy=policies,
            audit_log=audit_log,
            max_body_bytes=max_body_bytes,
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if not (config.security or insecure or is_loopback_host(config.host)):
        raise click.ClickException(
            f"refusing to serve on {config.host} without tokens: give --oidc-issuer (and TLS in front), or --insecure"
        )
    run(config, settings, audit_key=audit_key)


def run(config: Any, settings: Settings, *, audit_key: Path | None = None) -> None:
    """Open the catalog, build the app and serve it with uvicorn until SIGINT/SIGTERM."""
    import uvicorn

    from xtremehub.catalog import open_catalog
    from xtremehub.web import create_app

    # --audit-log, else the catalog's configured log (default <home>/audit/catalog.log)
    location = config.audit_log or settings.catalog.audit_location(settings.home)
    audit = _audit(location, audit_key or settings.home / "audit.key", settings)
    catalog = None
    try:
        try:  # bad policies, settings or a catalog that cannot be opened: a message, not a traceback
            validator, authorizer = security(config, settings, audit)
            settings.home.mkdir(parents=True, exist_ok=True)
            catalog = open_catalog(config.catalog, settings=settings, audit=audit)
            app = create_app(config, catalog=catalog, settings=settings, validator=validator, authorizer=authorizer)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
        # Listen before the URL is printed: a client that reads it and connects at once
        # (a script, a test) must queue, not be refused while uvicorn is still starting.
        sock.listen(2048)
        bound = config.replace(port=sock.getsockname()[1])
        mode = f"tokens from {config.oidc_issuer}" if config.security else "local user, no token"
        click.echo(f"xhub serve: {bound.url} (API {bound.url}/api/v1/docs; {mode})")
        sys.stdout.flush()
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again with the
        # handlers that were there before: make those end the command normally (exit 0).
        previous = signal.signal(signal.SIGTERM, lambda *_: None)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        if catalog is not None:
            catalog.close()
        if audit is not None:
            audit.close()


def _audit(location: str | None, key: Path, settings: Settings) -> Any:
    if not location:
        return None
    from xtremehub.security.audit import AuditConfig, AuditLog

    return AuditLog(AuditConfig(location=location, signing_key=key, settings=settings))


def security(config: Any, settings: Settings, audit: Any = None) -> tuple[Any, Any]:
    """The token validator and the authorizer ``xhub serve`` runs with (None, None: security off).

    The authorizer decides with the ``config.policy`` sources plus the catalog's usage-policy
    source (:func:`~xtremehub.catalog.store.access.usage_policy_source` of ``settings``), where
    approved access requests become policies; without ``config.policy`` there is none (every valid
    token may do everything, approvals change nothing).
    """
    if not config.security:
        return None, None
    from xtremehub.security.oidc import OIDCConfig, OIDCValidator

    validator = OIDCValidator(OIDCConfig(issuer=config.oidc_issuer, audience=config.oidc_audience))
    if not config.policy:
        return validator, None
    return validator, policy_authorizer(config.policy, settings, audit)


def policy_authorizer(policies: Sequence[str], settings: Settings, audit: Any = None) -> Authorizer:
    """The Cedar authorizer of ``--policy`` (``xhub serve``, ``xhub keys serve``): ``policies`` plus
    the catalog's usage-policy source (:func:`~xtremehub.catalog.store.access.usage_policy_source`
    of ``settings``), where approved access requests become policies; re-read every 2 seconds.

    Raises:
        ConfigError: no policy source given, or policies that do not parse.
    """
    from xtremehub.catalog.store.access import usage_policy_source
    from xtremehub.security.policy import PolicyConfig, build_authorizer

    if not policies:
        raise ConfigError("no policy source given")
    sources = tuple(policies)
    usage = usage_policy_source(settings)
    if _normal(usage) not in {_normal(s) for s in sources}:
        sources += (usage,)
    return build_authorizer(PolicyConfig(sources=sources, settings=settings), audit)


def _normal(source: str) -> str:
    """A policy source compared with another: local paths absolute, without a trailing ``/``."""
    if "://" in source and not source.startswith("file://"):
        return source.rstrip("/")
    return os.path.abspath(source.removeprefix("file://")).rstrip("/")
