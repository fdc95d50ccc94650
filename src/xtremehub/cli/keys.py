"""``xhub keys``: the key service -- serve it, create datasets, update key policies, rotate KEKs.

The master key comes from ``XHUB_MASTER_KEY_FILE`` (a 0600 file, see ``xhub keys master-key``) or
``XHUB_MASTER_KEY``; the key directory is ``--dir`` (default ``$XHUB_HOME/keys``).

Example:
    >>> from click.testing import CliRunner
    >>> "serve" in CliRunner().invoke(keys_group, ["--help"]).output
    True
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from xtremehub.config import Settings
from xtremehub.errors import ConfigError
from xtremehub.security.attest import measure
from xtremehub.security.identity import TokenValidator
from xtremehub.security.keypolicy import KeyPolicy
from xtremehub.security.keyservice import AuditSink, KeyService
from xtremehub.security.keyservice_http import KeyServer
from xtremehub.security.keyservice_store import MasterKey

__all__ = ["keys_group"]


def _service(ctx: click.Context, **options: Any) -> KeyService:
    directory = ctx.find_object(dict)["dir"]  # type: ignore[index]
    return KeyService(directory, MasterKey.from_env(), **options)


def _load_object(spec: str) -> Any:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ConfigError(f"{spec!r} is not MODULE:NAME")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load {spec!r}: {exc}") from None


def _jsonl_sink(path: Path) -> AuditSink:
    lock = threading.Lock()

    def write(record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True) + "\n"
        with lock, path.open("a") as f:
            f.write(line)

    return write


@click.group("keys")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), help="Key directory.")
@click.pass_context
def keys_group(ctx: click.Context, directory: Path | None) -> None:
    """The key service: KEKs per dataset, released to workers whose identity, purpose and code are allowed."""
    settings = ctx.obj if isinstance(ctx.obj, Settings) else Settings.load(config_file=None)
    if directory is None:
        directory = settings.home / "keys"
    ctx.obj = {"dir": directory, "settings": settings}


@keys_group.command("master-key")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def master_key(path: Path) -> None:
    """Write a new random master key to PATH (mode 0600); point XHUB_MASTER_KEY_FILE at it."""
    MasterKey.generate(path)
    click.echo(f"master key written to {path}; export XHUB_MASTER_KEY_FILE={path}")


@keys_group.command("create")
@click.argument("policy_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.pass_context
def create(ctx: click.Context, policy_file: Path) -> None:
    """Create a dataset's first KEK and key policy (version 1) from POLICY_FILE (TOML or JSON)."""
    policy = KeyPolicy.load(policy_file)
    version = _service(ctx).create_dataset(policy)
    click.echo(f"dataset {policy.dataset}: KEK version {version}, policy version {policy.version}")


@keys_group.command("policy")
@click.argument("dataset")
@click.option("--set", "policy_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Install.")
@click.pass_context
def policy(ctx: click.Context, dataset: str, policy_file: Path | None) -> None:
    """Show DATASET's key policy (with its digest), or install the next version with --set FILE.

    The new document must carry ``version`` = current + 1 and ``predecessor`` = the current digest.
    """
    service = _service(ctx)
    if policy_file is not None:
        new = KeyPolicy.load(policy_file)
        if new.dataset != dataset:
            raise ConfigError(f"{policy_file}: the policy is for {new.dataset!r}, not {dataset!r}")
        service.put_policy(new)
    current = service.policy(dataset)
    if current is None:
        raise ConfigError(f"dataset {dataset!r} has no key policy")
    click.echo(json.dumps({**current.to_dict(), "digest": current.digest()}, indent=2))


@keys_group.command("rotate")
@click.argument("dataset")
@click.pass_context
def rotate(ctx: click.Context, dataset: str) -> None:
    """Add a new KEK version for DATASET (old versions keep unwrapping old data keys)."""
    click.echo(f"dataset {dataset}: KEK version {_service(ctx).rotate(dataset)}")


@keys_group.command("measure")
@click.argument("function")
def measure_command(function: str) -> None:
    """Print the code measurement of FUNCTION (MODULE:NAME), for a key policy's measurements."""
    click.echo(measure(_load_object(function)))


@keys_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8443, show_default=True, help="TCP port; 0 picks a free one.")
@click.option(
    "--tls-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Directory made by `xhub security init` (server.pem, server-key.pem, ca.pem): serve HTTPS.",
)
@click.option("--mtls", is_flag=True, help="Require client certificates signed by the --tls-dir CA.")
@click.option("--insecure", is_flag=True, help="Allow plain HTTP on a non-loopback address.")
@click.option("--validator", help="MODULE:FACTORY returning the TokenValidator for submitters' tokens.")
@click.option("--audit-log", type=click.Path(dir_okay=False, path_type=Path), help="Append audit records (JSON lines).")
@click.option("--job-token-ttl", type=float, default=900.0, show_default=True, help="Job token lifetime, seconds.")
@click.option(
    "--admin-role",
    "admin_roles",
    multiple=True,
    help="Role that may change policies and rotate KEKs remotely (repeat).",
)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    help="Cedar policy directory or URL (repeatable), with the catalog's usage policies: they decide "
    "who and purpose of each release and remote administration, instead of the key-policy lists.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    tls_dir: Path | None,
    mtls: bool,
    insecure: bool,
    validator: str | None,
    audit_log: Path | None,
    job_token_ttl: float,
    admin_roles: tuple[str, ...],
    policies: tuple[str, ...],
) -> None:
    """Serve the key service over HTTPS until interrupted; the first line printed names the URL.

    With ``--policy`` the releases and remote administration are decided as ``xhub serve
    --policy`` decides requests: by those Cedar policies together with the usage policies that
    approved catalog access requests write (``[catalog] policies`` or ``<home>/policies``, re-read
    every 2 seconds), so an approval releases the dataset's key (``read`` on ``key:<dataset id>``)
    for its purpose until it expires or is revoked. The key policies' code measurements still
    apply; their subject, role and purpose lists do not (nor ``--admin-role``).
    """
    if mtls and tls_dir is None:
        raise ConfigError("--mtls needs --tls-dir")
    if policies and admin_roles:
        raise ConfigError("--admin-role is for key services without --policy: the policies decide administration")
    token_validator: TokenValidator | None = _load_object(validator)() if validator else None
    authorizer = None
    if policies:
        from xtremehub.cli.serve import policy_authorizer

        authorizer = policy_authorizer(policies, ctx.find_object(dict)["settings"])  # type: ignore[index]
    service = _service(
        ctx,
        validator=token_validator,
        authorizer=authorizer,
        audit=_jsonl_sink(audit_log) if audit_log is not None else None,
        job_token_ttl=job_token_ttl,
        admin_roles=admin_roles,
    )
    tls: dict[str, Any] = {}
    if tls_dir is not None:
        tls = {"cert_file": tls_dir / "server.pem", "key_file": tls_dir / "server-key.pem"}
        if mtls:
            tls["client_ca"] = tls_dir / "ca.pem"
    server = KeyServer(service, host, port, insecure=insecure, **tls)
    mode = (" (mutual TLS)" if mtls else "") + (" (policies)" if authorizer is not None else "")
    click.echo(f"xhub keys: serving {service.store.directory} on {server.url}{mode}")
    sys.stdout.flush()

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
