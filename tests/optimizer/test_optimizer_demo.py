"""The demo's main map is planned by the optimizer, which learns across runs under the data home."""

from __future__ import annotations

from pathlib import Path

from xtremehub.config import Settings
from xtremehub.demo import run_demo


def test_demo_plans_its_map_and_learns(tmp_path: Path) -> None:
    settings = Settings.load(config_file=None, home=str(tmp_path / "home"))
    reports = [run_demo(settings, size_mb=2, workers=2, progress=False) for _ in range(3)]
    assert all(r.ok for r in reports)
    first, last = reports[0], reports[-1]
    assert "(default)" in first.plan
    assert "2 slices per worker" in first.plan
    size = first.dataset.manifest["bytes"]
    assert first.partitions == min(4, size // 2**20)  # 2 per worker, no slice under 1 MiB
    assert f"{first.partitions} slices" in first.plan
    assert "(model)" in last.plan  # two runs' calls recorded: enough for a cost model
    assert "duration =" in last.plan
    assert "optimizer" in last.summary()
    assert (tmp_path / "home" / "optimizer" / "telemetry.sqlite").exists()
    fixed = run_demo(settings, size_mb=2, workers=2, partitions=3, progress=False)
    assert fixed.partitions == 3
    assert fixed.plan == ""  # --partitions given: no plan
