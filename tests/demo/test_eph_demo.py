"""The demo's ephemeral part: the two-stage k-mer job with a reducer action, bytes moved printed."""

from __future__ import annotations

from pathlib import Path

from xtremehub.config import Settings
from xtremehub.demo.ephemeral_job import run_ephemeral_demo


def test_ephemeral_demo_reads_one_merged_object(tmp_path: Path) -> None:
    report = run_ephemeral_demo(Settings(home=tmp_path), fastq_mb=2, slices=4, workers=2)
    assert report.ok, report.checks
    assert report.result.partials == 4
    assert report.result.bytes_read < report.partial_bytes_read_without_actions
    text = report.summary()
    assert "bytes moved" in text
    assert "spills" in text
    assert len(report.result.counts) == 4**5  # every 5-mer occurs in random reads
