"""``xhub eph``: run the ephemeral node service, show its statistics, relocate objects."""

from __future__ import annotations

import json
from pathlib import Path

import click

from xtremehub.config import Settings
from xtremehub.errors import ConfigError

__all__ = ["eph_group"]


def _size(value: str) -> int | float:
    from xtremehub.ephemeral.config import parse_size

    return parse_size(value)


@click.group("eph")
def eph_group() -> None:
    """Ephemeral tiered store (xhub-eph://bucket/key): node service and tools."""


@eph_group.command("serve")
@click.option("--memory", default="0.25", show_default=True, help="Memory threshold: bytes, 512MiB, or a fraction.")
@click.option("--disk", default="0", show_default=True, help="Node-disk threshold (0: no disk tier).")
@click.option("--memory-dir", type=click.Path(file_okay=False, path_type=Path), help="Default: /dev/shm.")
@click.option("--disk-dir", type=click.Path(file_okay=False, path_type=Path), help="Default: a temporary directory.")
@click.option("--persist", "persist_url", help="Persistency tier: a store URL prefix (s3://bucket/eph/, /data/eph/).")
@click.option("--write-back", is_flag=True, help="Upload every new object to the persistency tier in the background.")
@click.option("--relocate-on-close", is_flag=True, help="Persist every object not yet persisted when stopping.")
@click.option("--ttl", type=float, help="Default time to live of objects, in seconds.")
@click.option("--admit-timeout", type=float, default=10.0, show_default=True, help="Wait for space before TierFull.")
@click.option("--action-workers", type=int, default=4, show_default=True, help="Processes for storage actions.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=0, show_default=True, help="0: a free port (announced in the service file).")
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow a non-loopback --host: the service runs code its clients send, over plain TCP.",
)
@click.pass_obj
def serve(
    settings: Settings,
    memory: str,
    disk: str,
    memory_dir: Path | None,
    disk_dir: Path | None,
    persist_url: str | None,
    write_back: bool,
    relocate_on_close: bool,
    ttl: float | None,
    admit_timeout: float,
    action_workers: int,
    host: str,
    port: int,
    insecure: bool,
) -> None:
    """Serve this node's Tier 0 until SIGTERM/Ctrl-C (announced in <home>/eph/service.json)."""
    from xtremehub.ephemeral import NodeService, TierConfig

    check_host(host, insecure=insecure)
    if write_back and persist_url is None:
        raise ConfigError("--write-back needs --persist URL")
    config = TierConfig(
        memory_limit=_size(memory),
        disk_limit=_size(disk),
        memory_dir=memory_dir,
        disk_dir=disk_dir,
        persist_url=persist_url,
        write_back=write_back,
        relocate_on_close=relocate_on_close,
        default_ttl=ttl,
        admit_timeout=admit_timeout,
        action_workers=action_workers,
    )
    service = NodeService(config, settings, host=host, port=port)
    click.echo(f"xhub eph: serving at {service.address}", err=True)
    service.serve_forever()


def check_host(host: str, *, insecure: bool) -> None:
    """:class:`~xtremehub.errors.ConfigError` for a non-loopback ``host`` without ``insecure``.

    Example:
        >>> check_host("127.0.0.1", insecure=False)
        >>> check_host("0.0.0.0", insecure=False)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        xtremehub.errors.ConfigError: refusing to serve the node service on 0.0.0.0 ...
    """
    from xtremehub.security._net import is_loopback_host

    if insecure or is_loopback_host(host):
        return
    raise ConfigError(
        f"refusing to serve the node service on {host} (not loopback): it runs code its clients send "
        "(shared-state methods, storage actions), authenticated only by its authkey over plain TCP "
        "(no TLS). Pass --insecure on a trusted network, with XHUB_EPH_AUTHKEY given to the remote clients."
    )


@eph_group.command("stats")
@click.pass_obj
def stats(settings: Settings) -> None:
    """Print the node service's statistics as JSON."""
    from xtremehub.ephemeral import client_for

    click.echo(json.dumps(client_for(settings).stats(), indent=2, sort_keys=True))


@eph_group.command("relocate")
@click.argument("url")
@click.option("--to", help="Target URL prefix (default: the persistency tier).")
@click.pass_obj
def relocate(settings: Settings, url: str, to: str | None) -> None:
    """Copy the Tier-0 objects under URL (xhub-eph://bucket/prefix) to persistent storage."""
    from xtremehub.ephemeral import client_for
    from xtremehub.storage import split_url

    scheme, bucket, prefix = split_url(url)
    if scheme != "xhub-eph":
        raise ConfigError(f"{url}: relocate takes an xhub-eph:// URL")
    for done in client_for(settings).relocate(bucket, prefix, to=to):
        click.echo(done)


@eph_group.group("actions")
def actions_group() -> None:
    """Storage actions registered on the node service (xtremehub.ephemeral.actions)."""


@actions_group.command("ls")
@click.argument("bucket", required=False)
@click.pass_obj
def actions_ls(settings: Settings, bucket: str | None) -> None:
    """List the registered actions: prefix, kinds, limits, runs and failures."""
    from xtremehub.ephemeral import actions

    for action in actions.list_actions(bucket, settings=settings):
        into = f" -> {action['into']} ({action['reducer']})" if action["into"] else ""
        click.echo(
            f"{action['url']}\t{','.join(action['kinds'])}{into}\ttimeout {action['timeout']:g}s"
            f"\truns {action['runs']}\tfailures {action['failures']}"
        )


@actions_group.command("rm")
@click.argument("url")
@click.pass_obj
def actions_rm(settings: Settings, url: str) -> None:
    """Unregister the actions on the prefix URL (xhub-eph://bucket/prefix)."""
    from xtremehub.ephemeral import actions

    actions.unregister(url, settings=settings)
