"""A two-stage job through the ephemeral store with a reducer action (and the same job through S3).

Stage 1 runs one task per slice of a FASTQ.gz (connector slices of whole reads): each
counts the slice's k-mers and writes its counts as one JSON *partial* object. Stage 2
needs the counts of the whole file.

* ``via="actions"``: the partials go to ``xhub-eph://<bucket>/<run>/partials/``, where a
  ``sum_counts`` reducer merges each one into ``<run>/kmers.json`` as it arrives; stage 2
  reads that one small object.
* ``via="store"`` (the baseline): the partials go to any store URL prefix (SeaweedFS S3);
  stage 2 lists and reads all of them and adds them up itself.

:class:`TwoStageResult` counts the bytes moved between the stages (written by stage 1,
read by stage 2). ``xhub demo`` runs the actions version (:func:`run_ephemeral_demo`).

Example:
    >>> counts = kmer_counts([b"ACGTAC", b"NACGT"], k=3)
    >>> counts == {"ACG": 2, "CGT": 2, "GTA": 1, "TAC": 1}
    True
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from xtremehub import storage
from xtremehub.compute import FunctionExecutor
from xtremehub.config import Settings
from xtremehub.connectors import CloudObject, DataSlice
from xtremehub.connectors.genomics import FASTQGZip, FASTQGZipSlice, partition_reads_batches

__all__ = ["EphemeralDemoReport", "TwoStageResult", "kmer_counts", "run_ephemeral_demo", "run_two_stage"]

_CODE = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _CODE[_b] = _i


def kmer_counts(sequences: Iterable[bytes], k: int) -> dict[str, int]:
    """Counts of the k-mers (over ``ACGT``; windows with another letter are skipped) of ``sequences``."""
    seq = np.frombuffer(b"N".join(sequences), dtype=np.uint8)
    if seq.size < k:
        return {}
    codes = _CODE[seq].astype(np.int64)
    bad = np.concatenate(([0], np.cumsum(codes == 4)))
    index = np.zeros(seq.size - k + 1, dtype=np.int64)
    for j in range(k):
        index = index * 4 + np.minimum(codes[j : j + index.size], 3)
    valid = (bad[k:] - bad[:-k]) == 0
    counts = np.bincount(index[valid], minlength=4**k)
    present = np.flatnonzero(counts)
    return dict(zip(_names(k)[present].tolist(), counts[present].tolist(), strict=True))


@functools.cache
def _names(k: int) -> np.ndarray[Any, Any]:
    """Every k-mer over ACGT, in the order of its 2-bit code."""
    names = np.array([""], dtype=object)
    for _ in range(k):
        names = np.array([n + c for n in names for c in "ACGT"], dtype=object)
    return names


def count_slice(data_slice: FASTQGZipSlice, k: int, url: str) -> int:
    """Stage 1: count the slice's k-mers and write them to ``url``; the bytes written."""
    seqs: list[bytes] = []
    for chunk in data_slice.iter_chunks():
        seqs += chunk.split(b"\n")[1::4]
    data = json.dumps(kmer_counts(seqs, k), sort_keys=True).encode()
    storage.put(url, data)
    return len(data)


def read_merged(url: str) -> tuple[dict[str, int], int]:
    """Stage 2 with a reducer: read the one merged object."""
    data = storage.get(url)
    return json.loads(data), len(data)


def read_partials(prefix: str) -> tuple[dict[str, int], int]:
    """Stage 2 without actions: list and read every partial, add them up."""
    total: Counter[str] = Counter()
    moved = 0
    for info in storage.list(prefix):
        data = storage.get(info.url)
        moved += len(data)
        total.update(json.loads(data))
    return dict(total), moved


@dataclass
class TwoStageResult:
    """What one run of the two-stage job moved and found."""

    via: str
    prefix: str  # of the partials
    counts: dict[str, int]
    partials: int
    bytes_written: int  # by stage 1 (the partials)
    bytes_read: int  # by stage 2
    stage1_seconds: float
    stage2_seconds: float

    @property
    def bytes_moved(self) -> int:
        return self.bytes_written + self.bytes_read

    @property
    def seconds(self) -> float:
        return self.stage1_seconds + self.stage2_seconds


def run_two_stage(
    fexec: FunctionExecutor,
    slices: Sequence[DataSlice],
    *,
    via: Literal["actions", "store"],
    root: str,
    k: int = 5,
    settings: Settings,
) -> TwoStageResult:
    """Run the job once; ``root`` is a fresh URL prefix (``xhub-eph://bucket/`` for actions)."""
    run = f"{root.rstrip('/')}/{uuid.uuid4().hex[:10]}"
    prefix = f"{run}/partials/"
    if via == "actions":
        from xtremehub.ephemeral import actions

        merged = f"{run}/kmers.json"
        actions.register(prefix, reducer="sum_counts", into=merged, settings=settings)
    t0 = time.perf_counter()
    futures = fexec.map(count_slice, [(s, k, f"{prefix}part-{i:05d}.json") for i, s in enumerate(slices)])
    written = sum(fexec.get_result(futures))
    t1 = time.perf_counter()
    if via == "actions":
        counts, read = fexec.get_result(fexec.call_async(read_merged, merged))
    else:
        counts, read = fexec.get_result(fexec.call_async(read_partials, prefix))
    t2 = time.perf_counter()
    if via == "actions":
        actions.unregister(prefix, settings=settings)
    return TwoStageResult(via, prefix, counts, len(slices), written, read, t1 - t0, t2 - t1)


@dataclass
class EphemeralDemoReport:
    result: TwoStageResult
    partial_bytes_read_without_actions: int
    stats: dict[str, Any]
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    def summary(self) -> str:
        r, s = self.result, self.stats
        top = sorted(r.counts.items(), key=lambda kv: -kv[1])[:3]
        lines = [
            "XtremeHub demo: two-stage job through the ephemeral store with a reducer action",
            f"  stage 1      {r.partials} tasks count 5-mers of FASTQ.gz slices, write {r.bytes_written / 1e3:.0f} kB "
            f"of partials to xhub-eph:// ({r.stage1_seconds:.2f}s)",
            "  reducer      sum_counts merged them in the node service as they arrived",
            f"  stage 2      read one {r.bytes_read / 1e3:.1f} kB object ({r.stage2_seconds:.2f}s) instead of "
            f"{self.partial_bytes_read_without_actions / 1e3:.0f} kB of partials",
            f"  bytes moved  {r.bytes_moved / 1e3:.0f} kB between the stages (without the action: "
            f"{(r.bytes_written + self.partial_bytes_read_without_actions) / 1e3:.0f} kB)",
            f"  Tier 0       {s['memory_bytes'] / 1e3:.0f} kB in memory, {s['spills']} spills, "
            f"{s['spilled_bytes']} bytes spilled",
            "  top 5-mers   " + ", ".join(f"{kmer}: {n:,}" for kmer, n in top),
        ]
        lines += [f"  check        {name}: {'OK' if ok else 'FAILED'}" for name, ok in self.checks.items()]
        return "\n".join(lines)


def run_ephemeral_demo(
    settings: Settings, *, fastq_mb: int = 16, slices: int = 8, workers: int | None = None
) -> EphemeralDemoReport:
    """The two-stage job on the demo's sample FASTQ.gz, through a node service of this process
    (the one already running under ``settings.home`` if there is one)."""
    from xtremehub.demo.sample_data import ensure_sample_fastq
    from xtremehub.ephemeral import NodeService, TierConfig, client_for
    from xtremehub.errors import StorageUnavailable

    dataset = ensure_sample_fastq(settings.home, size_mb=fastq_mb)
    service = None
    try:
        client_for(settings)
    except StorageUnavailable:
        service = NodeService(TierConfig(memory_limit="256MiB"), settings).start()
    try:
        with FunctionExecutor(workers=workers, settings=settings) as fexec:
            co = CloudObject.from_path(FASTQGZip, dataset.url, settings=settings).preprocess()
            parts = co.partition(partition_reads_batches, num_batches=slices)
            result = run_two_stage(fexec, parts, via="actions", root="xhub-eph://demo-kmers/", settings=settings)
        stats = client_for(settings).stats()
        partial_sizes = [i.size for i in storage.list(result.prefix, settings=settings)]
    finally:
        if service is not None:
            service.stop()
    m = dataset.manifest
    checks = {
        "k-mers counted = bases - 4 per read (no N)": sum(result.counts.values()) == m["bases"] - 4 * m["reads"],
        "stage 2 read one object, smaller than the partials": result.bytes_read < sum(partial_sizes),
    }
    return EphemeralDemoReport(result, sum(partial_sizes), stats, checks)
