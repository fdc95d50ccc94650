"""``xhub policy``: check Cedar policy files and ask the engine for a decision.

Example:
    >>> from click.testing import CliRunner
    >>> "check" in CliRunner().invoke(policy_group, ["--help"]).output
    True
"""

from __future__ import annotations

import time

import click

from xtremehub.config import Settings
from xtremehub.security.authz import AccessRequest, Action, Resource
from xtremehub.security.identity import Identity
from xtremehub.security.policy import CedarAuthorizer, PolicyConfig, compile_policies
from xtremehub.security.policy_store import PolicyStore

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
