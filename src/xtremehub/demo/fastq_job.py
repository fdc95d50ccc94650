"""The demo's connector job: per-slice read statistics over a FASTQ.gz, in place."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xtremehub.compute import FunctionExecutor
from xtremehub.config import Settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.genomics import FASTQGZip, FASTQGZipSlice, partition_reads_batches
from xtremehub.demo.sample_data import SampleDataset, ensure_sample_fastq

__all__ = ["FastqReport", "read_stats", "run_fastq_demo", "sum_stats"]


def read_stats(data_slice: FASTQGZipSlice) -> dict[str, int]:
    """Map: reads, bases, G+C bases and summed Phred qualities of one slice."""
    stats = {"reads": 0, "bases": 0, "gc": 0, "quality_sum": 0}
    for chunk in data_slice.iter_chunks():
        lines = chunk.split(b"\n")
        seqs = b"".join(lines[1::4])
        quals = b"".join(lines[3::4])
        arr = np.frombuffer(seqs, dtype=np.uint8)
        stats["reads"] += len(lines) // 4
        stats["bases"] += arr.size
        stats["gc"] += int(((arr == ord("G")) | (arr == ord("C"))).sum())
        stats["quality_sum"] += int(np.frombuffer(quals, dtype=np.uint8).sum(dtype=np.int64)) - 33 * len(quals)
    return stats


def sum_stats(results: list[dict[str, int]]) -> dict[str, int]:
    """Reduce: add the slices' statistics."""
    return {key: sum(r[key] for r in results) for key in results[0]} if results else {}


@dataclass
class FastqReport:
    dataset: SampleDataset
    result: dict[str, int]
    slices: int
    preprocess_seconds: float
    seconds: float
    index_bytes: int
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    def summary(self) -> str:
        r, m = self.result, self.dataset.manifest
        lines = [
            "XtremeHub demo: FASTQ.gz connector (index once, read slices in place)",
            f"  object       {self.dataset.url} "
            f"({m['compressed_bytes'] / 1e6:.0f} MB gzip, {m['bytes'] / 1e6:.0f} MB FASTQ)",
            f"  preprocess   {self.preprocess_seconds:.2f}s, index {self.index_bytes / 1e3:.0f} kB "
            f"({self.index_bytes / m['compressed_bytes']:.2%} of the object)",
            f"  slices       {self.slices} batches of whole reads, {self.seconds:.2f}s "
            f"({m['bytes'] / self.seconds / 1e6:.0f} MB/s decompressed)",
            f"  reads        {r['reads']:,}  bases {r['bases']:,}  GC {r['gc'] / max(r['bases'], 1):.2%}  "
            f"mean quality {r['quality_sum'] / max(r['bases'], 1):.1f}",
        ]
        lines += [f"  check        {name}: {'OK' if ok else 'FAILED'}" for name, ok in self.checks.items()]
        return "\n".join(lines)


def run_fastq_demo(
    settings: Settings, *, size_mb: int = 64, slices: int = 16, workers: int | None = None, progress: bool | None = None
) -> FastqReport:
    dataset = ensure_sample_fastq(settings.home, size_mb=size_mb)
    with FunctionExecutor(workers=workers, settings=settings, progress=progress) as fexec:
        t0 = time.perf_counter()
        co = CloudObject.from_path(FASTQGZip, dataset.url, settings=settings).preprocess(fexec)  # parallel scan
        pre = time.perf_counter() - t0
        parts = co.partition(partition_reads_batches, num_batches=slices)
        t0 = time.perf_counter()
        reducer = fexec.map_reduce(read_stats, parts, sum_stats)
        fexec.wait(show_progressbar=progress)
        result: dict[str, Any] = fexec.get_result(reducer)
        seconds = time.perf_counter() - t0
    m = dataset.manifest
    from xtremehub import storage

    checks = {f"{key} match the generator": result[key] == m[key] for key in ("reads", "bases", "gc", "quality_sum")}
    checks["index matches the generator"] = co["num_reads"] == m["reads"]
    index_bytes = storage.head(co.metadata_url, settings=settings).size
    return FastqReport(dataset, result, len(parts), pre, seconds, index_bytes, checks)
