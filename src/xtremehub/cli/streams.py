"""``xhub streams``: create, list, describe, write, tail, cut and delete streams.

Streams are named ``SCOPE/STREAM``. By default the commands open the embedded store in
``$XHUB_HOME/streams`` (``--data`` to choose another directory, ``--lts`` for long-term storage);
``--url tcp://HOST:PORT`` talks to a stream server instead.

Example:
    >>> import tempfile
    >>> from click.testing import CliRunner
    >>> data = tempfile.mkdtemp()
    >>> run = lambda *args: CliRunner().invoke(streams_group, ["--data", data, *args], obj=None).output
    >>> run("create", "lab/frames", "--segments", "2")
    'created lab/frames (2 segments)\\n'
    >>> run("list")
    'lab/frames\\n'
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from xtremehub.config import Settings
from xtremehub.streams import RetentionPolicy, ScalingPolicy, StreamCut, StreamManager
from xtremehub.streams.server.command import serve

__all__ = ["streams_group"]


def _split(name: str) -> tuple[str, str]:
    scope, sep, stream = name.partition("/")
    if not sep or not scope or not stream:
        raise click.BadParameter(f"{name!r} is not SCOPE/STREAM", param_hint="STREAM")
    return scope, stream


@click.group("streams")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), help="Embedded data directory.")
@click.option("--lts", help="Long-term storage URL of the embedded store (default: local, under --data).")
@click.option("--url", help="A stream server, tcp://HOST:PORT (instead of the embedded store).")
@click.option("--login", "use_login", is_flag=True, help="Send the token stored by `xhub login` to the --url server.")
@click.option("--tls-ca", type=click.Path(dir_okay=False, exists=True), help="CA of a TLS --url server (PEM).")
@click.pass_context
def streams_group(
    ctx: click.Context, data: Path | None, lts: str | None, url: str | None, use_login: bool, tls_ca: str | None
) -> None:
    """Durable streams with Pravega semantics (embedded, or a server with --url)."""
    settings = ctx.obj if isinstance(ctx.obj, Settings) else None
    if data is None:
        data = (settings.home if settings is not None else Settings.load(config_file=None).home) / "streams"
    ctx.obj = {"data": data, "lts": lts, "url": url, "settings": settings, "login": use_login, "tls_ca": tls_ca}


@contextmanager
def _manager(ctx: click.Context) -> Iterator[StreamManager]:
    opts = ctx.find_object(dict)
    assert opts is not None
    if opts["url"]:
        token = None
        if opts.get("login"):
            from xtremehub.security.login import StoredToken

            token = StoredToken()
        manager = StreamManager(opts["url"], token=token, tls_ca=opts.get("tls_ca"))
    elif opts.get("settings") is not None:  # --config and the environment reach the LTS store
        manager = StreamManager.embedded(opts["data"], opts["lts"], settings=opts["settings"])
    else:
        manager = StreamManager.embedded(opts["data"], opts["lts"])
    with manager:
        yield manager


@streams_group.command("create")
@click.argument("name")
@click.option("--segments", type=int, default=1, show_default=True, help="Fixed (or minimum) segment count.")
@click.option("--event-rate", type=float, help="Auto-scale: target events/s per segment.")
@click.option("--byte-rate", type=float, help="Auto-scale: target bytes/s per segment.")
@click.option("--retention-seconds", type=float, help="Keep at least this many seconds of events.")
@click.option("--retention-bytes", type=int, help="Keep at least this many bytes of events.")
@click.pass_context
def create(
    ctx: click.Context,
    name: str,
    segments: int,
    event_rate: float | None,
    byte_rate: float | None,
    retention_seconds: float | None,
    retention_bytes: int | None,
) -> None:
    """Create stream NAME (SCOPE/STREAM), and its scope if needed."""
    scope, stream = _split(name)
    if event_rate is not None:
        scaling = ScalingPolicy.by_event_rate(event_rate, min_segments=segments)
    elif byte_rate is not None:
        scaling = ScalingPolicy.by_byte_rate(byte_rate, min_segments=segments)
    else:
        scaling = ScalingPolicy.fixed(segments)
    retention = None
    if retention_seconds is not None:
        retention = RetentionPolicy.by_time(retention_seconds)
    elif retention_bytes is not None:
        retention = RetentionPolicy.by_size(retention_bytes)
    with _manager(ctx) as manager:
        manager.create_scope(scope)
        created = manager.create_stream(scope, stream, scaling_policy=scaling, retention_policy=retention)
    click.echo(f"created {name} ({segments} segments)" if created else f"{name} already exists")


@streams_group.command("list")
@click.argument("scope", required=False)
@click.pass_context
def list_streams(ctx: click.Context, scope: str | None) -> None:
    """List streams (of SCOPE, or of every scope)."""
    with _manager(ctx) as manager:
        for sc in [scope] if scope else manager.list_scopes():
            for stream in manager.list_streams(sc):
                click.echo(f"{sc}/{stream}")


@streams_group.command("describe")
@click.argument("name")
@click.pass_context
def describe(ctx: click.Context, name: str) -> None:
    """Policies, state, active segments and the head and tail cuts of NAME."""
    scope, stream = _split(name)
    with _manager(ctx) as manager:
        info = manager.get_stream(scope, stream)
        tail = manager.get_tail_cut(scope, stream).offsets
        head = manager.get_head_cut(scope, stream).offsets
    scaling, retention = info.config.scaling, info.config.retention
    click.echo(f"stream:    {name}{'  (sealed)' if info.sealed else ''}")
    click.echo(f"scaling:   {scaling.kind} (min {scaling.min_segments}, target {scaling.target_rate:g})")
    click.echo(f"retention: {retention.kind} ({retention.seconds:g} s, {retention.bytes} bytes)")
    click.echo(f"epoch:     {info.epoch}")
    click.echo(f"head:      {sum(head.values())} bytes into {len(head)} segments")
    for seg in info.active_segments:
        click.echo(f"  {seg.name}  keys [{seg.key_low:.4f}, {seg.key_high:.4f})  length {tail.get(seg.name, 0)}")


@streams_group.command("write")
@click.argument("name")
@click.argument("events", nargs=-1)
@click.option("--key", help="Routing key of every event.")
@click.pass_context
def write(ctx: click.Context, name: str, events: tuple[str, ...], key: str | None) -> None:
    """Write EVENTS (or one event per line of standard input) to NAME."""
    scope, stream = _split(name)
    payloads = [e.encode() for e in events] if events else (line.rstrip(b"\n") for line in sys.stdin.buffer)
    count = 0
    with _manager(ctx) as manager, manager.create_writer(scope, stream, max_in_flight=64) as writer:
        for payload in payloads:
            writer.write_event(payload, routing_key=key)
            count += 1
    click.echo(f"wrote {count} events to {name}", err=True)


@streams_group.command("tail")
@click.argument("name")
@click.option("--start", type=click.Choice(["head", "tail"]), default="head", show_default=True)
@click.option("--cut", "cut_json", help="Start at this stream cut (JSON from `xhub streams cut`).")
@click.option("-n", "--count", type=int, help="Stop after this many events.")
@click.option("--timeout", type=float, default=1.0, show_default=True, help="Stop after this many idle seconds.")
@click.option("--keys", is_flag=True, help="Print the routing key and position before each event.")
@click.pass_context
def tail(
    ctx: click.Context, name: str, start: str, cut_json: str | None, count: int | None, timeout: float, keys: bool
) -> None:
    """Print the events of NAME, one per line, until idle for --timeout seconds."""
    scope, stream = _split(name)
    group_name = f"xhub-tail-{uuid.uuid4().hex[:10]}"
    with _manager(ctx) as manager:
        begin = StreamCut.from_json(cut_json) if cut_json else start
        group = manager.create_reader_group(group_name, scope, [stream], start=begin)  # type: ignore[arg-type]
        reader = group.create_reader("cli", sync_interval=0.1)
        seen = 0
        try:
            while count is None or seen < count:
                event = reader.read_next(timeout=timeout)
                if event is None:
                    break
                seen += 1
                text = event.data.decode("utf-8", errors="replace")
                prefix = f"{event.routing_key}\t{event.position.segment}@{event.position.offset}\t" if keys else ""
                click.echo(prefix + text)
        finally:
            reader.reader_offline()
            group.delete()


@streams_group.command("cut")
@click.argument("name")
@click.option("--head", is_flag=True, help="Print the head cut instead of the tail cut.")
@click.option("--truncate", "truncate_json", help="Truncate NAME at this cut (JSON) instead of printing one.")
@click.pass_context
def cut(ctx: click.Context, name: str, head: bool, truncate_json: str | None) -> None:
    """Print the tail (or head) stream cut of NAME as JSON, or truncate at a cut."""
    scope, stream = _split(name)
    with _manager(ctx) as manager:
        if truncate_json:
            manager.truncate_stream(scope, stream, StreamCut.from_json(truncate_json))
            click.echo(f"truncated {name}", err=True)
            return
        found = manager.get_head_cut(scope, stream) if head else manager.get_tail_cut(scope, stream)
        click.echo(found.to_json())


@streams_group.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def delete(ctx: click.Context, name: str, yes: bool) -> None:
    """Seal and delete stream NAME and all its events."""
    scope, stream = _split(name)
    if not yes:
        click.confirm(f"delete {name} and all its events?", abort=True)
    with _manager(ctx) as manager:
        manager.delete_stream(scope, stream)
    click.echo(f"deleted {name}")


streams_group.add_command(serve)  # the server's own entry point (xtremehub.streams.server.command)
