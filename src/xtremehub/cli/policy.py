"""``xhub policy``: check Cedar policy files and ask the engine for a decision.

Example:
    >>> from click.testing import CliRunner
    >>> "check" in CliRunner().invoke(policy_group, ["--help"]).output
    True
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from xtremehub.config import Settings
from xtremehub.security.authz import AccessRequest, Action, Resource
from xtremehub.security.identity import Identity
from xtremehub.security.policy import CedarAuthorizer, PolicyConfig, compile_policies
from xtremehub.security.policy_store import PolicyStore, diff

__all__ = ["policy_group"]


@click.group("policy")
def policy_group() -> None:
    """Authorisation policies (Cedar files in directories or storage prefixes)."""


@policy_group.command("check")
@click.argument("sources", nargs=-1, required=True)
@click.pass_obj
def check(settings: Settings, sources: tuple[str, ...]) -> None:
    """Parse the *.cedar files of SOURCES (directories or prefix URLs) as one policy set."""
    snapshots = [PolicyStore(url, settings=settings).load() for url in sources]
    compiled = compile_policies(snapshots)
    for snap in snapshots:
        click.echo(f"{snap.source}: version {snap.version}, {len(snap.sources)} files, digest {snap.digest[:16]}")
    for pid, effect in sorted(compiled.effects.items()):
        click.echo(f"  {effect:<7} {pid}")
    click.echo(f"ok: {len(compiled.effects)} policies")


@policy_group.command("decide")
@click.argument("sources", nargs=-1, required=True)
@click.option("--subject", required=True, help="The identity's subject.")
@click.option("--role", "roles", multiple=True, help="A role of the identity (repeatable).")
@click.option("--group", "groups", multiple=True, help="A group of the identity (repeatable).")
@click.option("--action", type=click.Choice([a.value for a in Action]), required=True)
@click.option("--resource", required=True, help="KIND:NAME, e.g. stream:lungs/ct or object:s3://b/k.")
@click.option("--purpose", help="The purpose of use.")
@click.option("--at", "at", type=float, help="Unix time of the request (default: now).")
@click.pass_obj
def decide(
    settings: Settings,
    sources: tuple[str, ...],
    subject: str,
    roles: tuple[str, ...],
    groups: tuple[str, ...],
    action: str,
    resource: str,
    purpose: str | None,
    at: float | None,
) -> None:
    """What the policies of SOURCES decide for one request (exit code 1 on a denial)."""
    kind, sep, name = resource.partition(":")
    if not sep:
        raise click.BadParameter("expected KIND:NAME", param_hint="--resource")
    authz = CedarAuthorizer(PolicyConfig(sources=sources, reload_interval=0, settings=settings))
    identity = Identity(subject, roles=frozenset(roles), groups=frozenset(groups))
    request = AccessRequest(identity, Action(action), Resource(kind, name), purpose=purpose, at=at or time.time())
    decision = authz.decide(request)
    click.echo(f"{'ALLOW' if decision.allowed else 'DENY'} [{decision.policy_id}] {decision.reason}")
    if not decision.allowed:
        raise SystemExit(1)


@policy_group.command("push")
@click.argument("source")
@click.argument("target")
@click.option("--base", help="Digest of the target's policy set this change is based on (default: its current one).")
@click.option("--subject", default="policy-admin", show_default=True, help="Who makes the change (for the audit log).")
@click.option("--audit-log", help="Audit log (file or prefix/) to record the changes in.")
@click.option(
    "--signing-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Ed25519 key signing the audit log's checkpoints (needed with --audit-log).",
)
@click.pass_obj
def push(
    settings: Settings,
    source: str,
    target: str,
    base: str | None,
    subject: str,
    audit_log: str | None,
    signing_key: Path | None,
) -> None:
    """Make TARGET's *.cedar files those of SOURCE (e.g. a reviewed directory to s3://.../policies/).

    The policies are parsed first (nothing is written if one is broken); the update names the
    target digest it is based on, so a concurrent change makes it fail with StalePolicy.
    """
    from xtremehub.security.audit import AuditConfig, AuditLog

    wanted = PolicyStore(source, settings=settings).load()
    compile_policies([wanted])
    log = None
    if audit_log is not None:
        if signing_key is None:
            raise click.BadParameter("--audit-log needs --signing-key", param_hint="--signing-key")
        log = AuditLog(AuditConfig(location=audit_log, signing_key=signing_key, settings=settings))
    try:
        store = PolicyStore(target, settings=settings, audit=log)
        current = store.load()
        changes = diff(current, wanted)
        if not changes:
            click.echo(f"{store.url}: up to date at version {current.version} (digest {current.digest[:16]})")
            return
        new = store.update(
            {c.name: wanted.sources.get(c.name) for c in changes}, base=base or current.digest, subject=subject
        )
    finally:
        if log is not None:
            log.close()
    for change in changes:
        click.echo(f"  {change.kind:<7} {change.name}")
    click.echo(f"{store.url}: version {new.version} (digest {new.digest[:16]}, predecessor {current.digest[:16]})")
