"""``xhub storage``: list, copy, print and remove objects by URL."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import click
from tqdm import tqdm

from xtremehub import storage
from xtremehub.config import Settings

__all__ = ["storage_group"]

_BLOCK = 8 * 1024 * 1024


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _bar(total: int, desc: str) -> tqdm[Any]:
    return tqdm(
        total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
        disable=not sys.stderr.isatty() or total < 16 * 1024 * 1024, leave=False,
    )  # fmt: skip


@click.group("storage")
def storage_group() -> None:
    """Object storage by URL: /path, file://, s3://bucket/key, mem://bucket/key."""


@storage_group.command("ls")
@click.argument("url")
@click.option("-l", "--long", "long_format", is_flag=True, help="Show size, modification time and etag.")
@click.pass_obj
def ls(settings: Settings, url: str, long_format: bool) -> None:
    """List objects under URL (a prefix such as s3://bucket/dir/)."""
    count = total = 0
    for info in storage.list(url, settings=settings):
        count += 1
        total += info.size
        if long_format:
            mtime = info.mtime.strftime("%Y-%m-%d %H:%M:%S") if info.mtime else "-"
            click.echo(f"{info.size:>14,}  {mtime}  {info.etag or '-':<34}  {info.url}")
        else:
            click.echo(info.url)
    if long_format:
        click.echo(f"{count} objects, {_human(total)}", err=True)


@storage_group.command("stat")
@click.argument("url")
@click.pass_obj
def stat(settings: Settings, url: str) -> None:
    """Show size, etag and modification time of one object."""
    info = storage.head(url, settings=settings)
    click.echo(
        f"url:   {info.url}\nsize:  {info.size:,} ({_human(info.size)})\netag:  {info.etag}\nmtime: {info.mtime}"
    )


def _read_blocks(fh: BinaryIO, bar: tqdm[Any]) -> Iterator[bytes]:
    while block := fh.read(_BLOCK):
        bar.update(len(block))
        yield block


@storage_group.command("put")
@click.argument("src", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.argument("url")
@click.pass_obj
def put(settings: Settings, src: str, url: str) -> None:
    """Upload a local file (or - for stdin) to URL."""
    if src == "-":
        info = storage.put(url, sys.stdin.buffer, settings=settings)
    else:
        with open(src, "rb") as fh, _bar(os.path.getsize(src), Path(src).name) as bar:
            info = storage.put(url, _read_blocks(fh, bar), settings=settings)
    click.echo(f"{info.url}  {_human(info.size)}")


@storage_group.command("get")
@click.argument("url")
@click.argument("dest", type=click.Path(dir_okay=True, allow_dash=True), required=False)
@click.pass_obj
def get(settings: Settings, url: str, dest: str | None) -> None:
    """Download URL to DEST (default: its name in the current directory; - for stdout)."""
    with storage.open(url, block_size=_BLOCK, settings=settings) as src:
        size = src.raw.size  # type: ignore[attr-defined]
        if dest == "-":
            for block in _read_blocks(src, _bar(0, "")):
                sys.stdout.buffer.write(block)
            return
        target = Path(dest or url.rstrip("/").rsplit("/", 1)[-1])
        if target.is_dir():
            target /= url.rstrip("/").rsplit("/", 1)[-1]
        with _bar(size, target.name) as bar:
            storage.put(str(target.absolute()), _read_blocks(src, bar))
    click.echo(f"{target}  {_human(size)}")


@storage_group.command("cat")
@click.argument("url")
@click.option("--range", "byte_range", metavar="START-END", help="Only bytes START..END-1 (half-open).")
@click.pass_obj
def cat(settings: Settings, url: str, byte_range: str | None) -> None:
    """Print an object (or a byte range of it) to stdout."""
    if byte_range:
        try:
            start_s, _, end_s = byte_range.partition("-")
            start, end = int(start_s), int(end_s)
        except ValueError:
            raise click.BadParameter(f"expected START-END, got {byte_range!r}", param_hint="--range") from None
        sys.stdout.buffer.write(storage.get_range(url, start, end, settings=settings))
        return
    with storage.open(url, block_size=_BLOCK, settings=settings) as src:
        while block := src.read(_BLOCK):
            sys.stdout.buffer.write(block)


@storage_group.command("rm")
@click.argument("urls", nargs=-1, required=True)
@click.option("-r", "--recursive", is_flag=True, help="Remove every object under each URL prefix.")
@click.pass_obj
def rm(settings: Settings, urls: tuple[str, ...], recursive: bool) -> None:
    """Remove objects."""
    for url in urls:
        targets = [i.url for i in storage.list(url, settings=settings)] if recursive else [url]
        for target in targets:
            storage.delete(target, settings=settings)
            click.echo(f"removed {target}")
