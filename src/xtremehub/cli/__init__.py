"""The ``xhub`` command line: one module per command group.

Example:
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(cli, ["--help"])
    >>> "storage" in result.output and "demo" in result.output
    True
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from xtremehub import __version__
from xtremehub.config import Settings
from xtremehub.errors import XHubError

__all__ = ["cli", "main"]

#: Every command: its name and where it is defined ("module:attribute"). Each module is imported
#: when its command runs (or ``--help`` lists them all), so ``xhub eph serve`` or ``xhub storage
#: cat`` start without loading the stream, security, catalog and pipeline modules first.
COMMANDS: Mapping[str, str] = {
    "audit": "xtremehub.cli.audit:audit_group",
    "auth": "xtremehub.cli.auth:auth_group",
    "catalog": "xtremehub.cli.catalog:catalog_group",
    "demo": "xtremehub.cli.demo:demo",
    "eph": "xtremehub.cli.eph:eph_group",
    "keys": "xtremehub.cli.keys:keys_group",
    "login": "xtremehub.cli.auth:login_command",
    "mdr": "xtremehub.cli.mdr:mdr_group",
    "metaspace": "xtremehub.cli.metaspace:metaspace_group",
    "plan": "xtremehub.cli.plan:plan_command",
    "policy": "xtremehub.cli.policy:policy_group",
    "security": "xtremehub.cli.security:security_group",
    "serve": "xtremehub.cli.serve:serve",
    "storage": "xtremehub.cli.storage:storage_group",
    "streams": "xtremehub.cli.streams:streams_group",
    "telemetry": "xtremehub.cli.telemetry:telemetry_group",
    "variants": "xtremehub.cli.variants:variants_group",
}


class _LazyGroup(click.Group):
    """A group whose commands (:data:`COMMANDS`) are imported when first looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, _, attribute = COMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xhub")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML config file (default: $XHUB_CONFIG or ~/.config/xtremehub/config.toml).",
)
@click.option(
    "--home", type=click.Path(file_okay=False, path_type=Path), help="Data home (default: $XHUB_HOME or ~/.xtremehub)."
)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None, home: Path | None, verbose: int) -> None:
    """XtremeHub: near-data processing of extreme scientific data.

    Settings come from options, then XHUB_* environment variables, then the
    config file. Storage URLs: local paths, file://, s3://bucket/key, mem://.
    """
    overrides: dict[str, Any] = {}
    if home is not None:
        overrides["home"] = home
    if verbose:
        overrides["log_level"] = "DEBUG" if verbose > 1 else "INFO"
    settings = Settings.load(config_file=config_file if config_file is not None else "default", **overrides)
    logging.basicConfig(
        level=getattr(logging, settings.log_level, logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = settings


def main() -> None:
    """Console entry point: XtremeHub errors become one clear line and exit code 1."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except XHubError as exc:
        click.echo(f"xhub: error: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
