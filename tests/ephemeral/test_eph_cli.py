"""``xhub eph stats`` and ``xhub eph relocate`` against a running node service."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from xtremehub import storage
from xtremehub.cli import cli
from xtremehub.config import Settings
from xtremehub.ephemeral import NodeService, TierConfig


def test_stats_and_relocate(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    config = TierConfig(memory_limit="16MiB", persist_url=str(tmp_path / "persist"))
    with NodeService(config, settings).start():
        storage.put("xhub-eph://runs/r1/a.bin", b"abc", settings=settings)
        runner = CliRunner()
        home = ["--home", str(settings.home)]
        result = runner.invoke(cli, [*home, "eph", "stats"])
        assert result.exit_code == 0, result.output
        stats = json.loads(result.output)
        assert stats["memory_bytes"] == 3
        assert stats["objects_not_persisted"] == 1
        result = runner.invoke(cli, [*home, "eph", "relocate", "xhub-eph://runs/r1/"])
        assert result.exit_code == 0, result.output
        assert result.output.split() == ["xhub-eph://runs/r1/a.bin"]
        assert (tmp_path / "persist" / "runs" / "r1" / "a.bin").read_bytes() == b"abc"
        result = runner.invoke(cli, [*home, "eph", "relocate", "s3://not/eph"])
        assert result.exit_code != 0


def test_serve_refuses_write_back_without_persistency_tier(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "eph", "serve", "--write-back"])
    assert result.exit_code != 0
    assert "--persist" in str(result.exception)
