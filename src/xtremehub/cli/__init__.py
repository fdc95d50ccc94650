"""The ``xhub`` command line: one module per command group.

Example:
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(cli, ["--help"])
    >>> "storage" in result.output and "demo" in result.output
    True
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from xtremehub import __version__
from xtremehub.config import Settings
from xtremehub.errors import XHubError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


def _register() -> None:
    from xtremehub.cli.audit import audit_group
    from xtremehub.cli.auth import auth_group, login_command
    from xtremehub.cli.catalog import catalog_group
    from xtremehub.cli.demo import demo
    from xtremehub.cli.eph import eph_group
    from xtremehub.cli.keys import keys_group
    from xtremehub.cli.mdr import mdr_group
    from xtremehub.cli.metaspace import metaspace_group
    from xtremehub.cli.plan import plan_command
    from xtremehub.cli.policy import policy_group
    from xtremehub.cli.security import security_group
    from xtremehub.cli.storage import storage_group
    from xtremehub.cli.streams import streams_group
    from xtremehub.cli.telemetry import telemetry_group
    from xtremehub.cli.variants import variants_group

    cli.add_command(storage_group)
    cli.add_command(demo)
    cli.add_command(streams_group)
    cli.add_command(mdr_group)
    cli.add_command(metaspace_group)
    cli.add_command(audit_group)
    cli.add_command(policy_group)
    cli.add_command(keys_group)
    cli.add_command(security_group)
    cli.add_command(telemetry_group)
    cli.add_command(plan_command)
    cli.add_command(auth_group)
    cli.add_command(login_command)
    cli.add_command(variants_group)
    cli.add_command(eph_group)
    cli.add_command(catalog_group)


_register()


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
