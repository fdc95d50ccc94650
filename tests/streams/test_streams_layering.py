"""Layering: the stream packages never import the CLI (the CLI calls into them, not the reverse)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import xtremehub.streams

STREAMS = Path(xtremehub.streams.__file__).parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_stream_module_imports_the_cli() -> None:
    offenders = {
        str(path.relative_to(STREAMS)): sorted(
            n for n in _imports(path) if n == "xtremehub.cli" or n.startswith("xtremehub.cli.")
        )
        for path in sorted(STREAMS.rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_server_entry_point_runs_without_loading_the_cli() -> None:
    code = (
        "import sys, runpy; sys.argv = ['xhub streams serve', '--help'];\n"
        "try:\n    runpy.run_module('xtremehub.streams.server', run_name='__main__')\n"
        "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        "print('cli loaded' if 'xtremehub.cli' in sys.modules else 'cli not loaded')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert "--maintenance-interval" in out
    assert out.strip().endswith("cli not loaded")


def test_xhub_streams_serve_is_the_server_command() -> None:
    import click

    from xtremehub.cli import cli
    from xtremehub.streams.server.command import serve

    group = cli.get_command(click.Context(cli), "streams")
    assert getattr(group, "commands", {})["serve"] is serve
