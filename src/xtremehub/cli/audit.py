"""``xhub audit``: verify an audit log's chain and signed checkpoints, and show its records.

Example:
    >>> from click.testing import CliRunner
    >>> "verify" in CliRunner().invoke(audit_group, ["--help"]).output
    True
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import click

from xtremehub.config import Settings
from xtremehub.errors import AuditLogTampered, ConfigError

__all__ = ["audit_group"]


@click.group("audit")
def audit_group() -> None:
    """The hash-chained audit log of authorisation decisions, policy changes and key releases."""


@audit_group.command("verify")
@click.argument("location")
@click.option(
    "--public-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The log writer's Ed25519 public key (PEM; the .pub next to its signing key). "
    "Without it only the hash chain is checked.",
)
@click.pass_obj
def verify(settings: Settings, location: str, public_key: Path | None) -> None:
    """Check every record and checkpoint of the log at LOCATION (a file or a storage prefix/).

    Names every edited, removed, reordered or inserted record by line and seq, and every
    checkpoint whose signature does not verify; exit code 1 if anything is wrong.
    """
    # imported here: `xhub` runs without the security extra (cryptography) installed
    from xtremehub.security.audit import is_store_location
    from xtremehub.security.audit_signing import key_id, load_public_key
    from xtremehub.security.audit_verify import verify_log

    if not is_store_location(location) and not Path(location).is_file():
        raise ConfigError(f"{location}: no audit log there")
    key = load_public_key(public_key) if public_key is not None else None
    report = verify_log(location, public_key=key, settings=settings, raise_on_error=False)
    for problem in report.problems:
        click.echo(f"TAMPERED: {problem}", err=True)
    if report.problems:
        raise AuditLogTampered(f"{location}: {len(report.problems)} problems; the first: {report.problems[0]}")
    signed = (
        f"{report.checkpoints} checkpoints verified with key {key_id(key)}"
        if key is not None
        else "checkpoint signatures NOT checked (pass --public-key)"
    )
    click.echo(
        f"ok: {location}: {report.records} records, chain intact, {signed}; "
        f"{report.uncovered} records after the last checkpoint"
    )


@audit_group.command("show")
@click.argument("location")
@click.option("-n", "--tail", "tail", type=int, default=20, show_default=True, help="Show the last N records (0: all).")
@click.option("--kind", help="Only records of this kind (decision, policy, key-release, checkpoint).")
@click.option("--subject", help="Only records of this subject.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON lines.")
@click.pass_obj
def show(settings: Settings, location: str, tail: int, kind: str | None, subject: str | None, as_json: bool) -> None:
    """Print the records of the audit log at LOCATION, one a line."""
    from xtremehub.security.audit import read_lines

    shown: deque[dict[str, object]] = deque(maxlen=tail or None)
    for where, raw in read_lines(location, settings=settings):
        try:
            rec = json.loads(raw)
        except ValueError:
            click.echo(f"{where}: unreadable line (run `xhub audit verify`)", err=True)
            continue
        if (kind and rec.get("kind") != kind) or (subject and rec.get("subject") != subject):
            continue
        shown.append(rec)
    for rec in shown:
        if as_json:
            click.echo(json.dumps(rec, sort_keys=True))
            continue
        verdict = rec.get("decision") or "-"
        purpose = f" purpose={rec['purpose']}" if rec.get("purpose") else ""
        policy = f" policy={rec['policy']}" if rec.get("policy") else ""
        click.echo(
            f"{rec.get('seq'):>6} {rec.get('time')} {rec.get('kind'):<10} {verdict:<5} "
            f"{rec.get('subject')} {rec.get('action')} {rec.get('resource')}{purpose}{policy}"
        )
