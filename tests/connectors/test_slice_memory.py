"""Bounded memory: iterating the records of a slice grows a worker's peak RSS by a bounded amount.

Measured as the issue defines it, with the task telemetry's peak RSS (on Linux the
call's own high-water mark): one worker runs a no-op call, then a call that iterates
every record of one slice covering the whole object. The growth must stay under
64 MiB and must not scale with the slice: a slice four times larger grows it by
less than 16 MiB more. (``get()``, which returns the whole slice, may hold it;
iteration may not.)
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest

from xtremehub import FunctionExecutor
from xtremehub.connectors import CloudObject
from xtremehub.connectors.genomics import (
    VCF,
    FASTQGZip,
    FASTQGZipSlice,
    VCFSlice,
    partition_reads_batches,
    partition_records,
)

MiB = 1024 * 1024
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-call peak RSS needs Linux")


def _write_fastq_gz(path: Path, mib: int) -> None:
    rng = np.random.default_rng(1)
    acgt = np.frombuffer(b"ACGT", dtype=np.uint8)
    written, n = 0, 0
    with gzip.open(path, "wb", compresslevel=1) as fh:
        while written < mib * MiB:
            seq = acgt[rng.integers(0, 4, (2000, 100))]
            block = b"".join(b"@r%d\n%s\n+\n%s\n" % (n + i, s.tobytes(), s.tobytes()) for i, s in enumerate(seq))
            fh.write(block)
            written += len(block)
            n += 2000


def _write_vcf_gz(path: Path, mib: int) -> None:
    rng = np.random.default_rng(2)
    written, pos = 0, 0
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(b"##fileformat=VCFv4.2\n##contig=<ID=chr1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        while written < mib * MiB:
            steps = np.cumsum(rng.integers(1, 50, 5000)) + pos
            pos = int(steps[-1])
            block = b"".join(b"chr1\t%d\t.\tA\tG\t50\tPASS\tDP=%d\n" % (p, p % 97) for p in steps.tolist())
            fh.write(block)
            written += len(block)


def noop() -> int:
    return 0


def iterate_fastq(s: FASTQGZipSlice) -> int:
    return sum(1 for _ in s.iter_records())


def iterate_vcf(s: VCFSlice) -> int:
    return sum(1 for _ in s.record_lines())


def _growth(fexec: FunctionExecutor, func: object, s: object) -> tuple[int, int]:
    """(records, peak RSS growth of iterating ``s`` over a no-op call on the same worker)."""
    base = fexec.call_async(noop)
    assert base.result(timeout=120) == 0
    run = fexec.call_async(func, s)  # type: ignore[arg-type]
    n = run.result(timeout=600)
    assert base.telemetry is not None
    assert run.telemetry is not None
    assert base.telemetry.worker == run.telemetry.worker
    return n, run.telemetry.peak_rss - base.telemetry.peak_rss


@pytest.mark.parametrize("kind", ["fastq", "vcf"])
def test_iteration_memory_does_not_grow_with_the_slice(tmp_path: Path, kind: str) -> None:
    growth = {}
    with FunctionExecutor(workers=1, progress=False) as fexec:  # one worker: every call shares a process
        for mib in (24, 96):
            path = tmp_path / f"x{mib}.{kind}.gz"
            if kind == "fastq":
                _write_fastq_gz(path, mib)
                co = CloudObject.from_path(FASTQGZip, str(path), metadata_url=str(tmp_path / f"i{mib}")).preprocess()
                (whole,) = co.partition(partition_reads_batches, num_batches=1)
                n, growth[mib] = _growth(fexec, iterate_fastq, whole)
                assert n == co["num_reads"]
            else:
                _write_vcf_gz(path, mib)
                co = CloudObject.from_path(VCF, str(path), metadata_url=str(tmp_path / f"i{mib}")).preprocess()
                (whole,) = co.partition(partition_records, num_batches=1)
                n, growth[mib] = _growth(fexec, iterate_vcf, whole)
                assert n == co["num_variants"]
    print(kind, {k: round(v / MiB, 1) for k, v in growth.items()})
    assert growth[96] < 64 * MiB, growth
    assert growth[96] - growth[24] < 16 * MiB, growth
