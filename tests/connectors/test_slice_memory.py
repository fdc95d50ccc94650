"""Bounded memory: iterating the records of a slice grows a worker's peak RSS by a bounded amount.

Measured as the issue defines it, with the task telemetry's peak RSS (on Linux the
call's own high-water mark): one worker runs a no-op call, then a call that iterates
every record of one slice covering the whole object (FASTQ.gz reads, VCF.gz
records, imzML spectra, LAZ points). The growth must stay under
64 MiB and must not scale with the slice: a slice four times larger grows it by
less than 16 MiB more. (``get()``, which returns the whole slice, may hold it;
iteration may not.)
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import laspy
import numpy as np
import pytest

from xtremehub import FunctionExecutor
from xtremehub.compute.task import reset_peak_rss
from xtremehub.connectors import CloudObject
from xtremehub.connectors.genomics import (
    VCF,
    FASTQGZip,
    FASTQGZipSlice,
    VCFSlice,
    partition_reads_batches,
    partition_records,
)
from xtremehub.connectors.imaging import ImzML, ImzMLSlice, partition_spectra, write_synthetic_imzml
from xtremehub.connectors.pointcloud import LAS, PointCloudSlice, partition_points

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


def _write_imzml(path: Path, mib: int) -> None:
    """A processed-mode imzML whose ``.ibd`` holds about ``mib`` MiB (8 bytes per m/z point)."""
    side = round((mib * MiB / (2000 * 8)) ** 0.5)
    write_synthetic_imzml(str(path), width=side, height=side, n_mz=2000)


def _write_laz(path: Path, mib: int) -> None:
    """A LAZ whose points decode to about ``mib`` MiB (point format 3: 34 bytes per point)."""
    n = mib * MiB // 34
    rng = np.random.default_rng(3)
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales, header.offsets = np.array([0.01, 0.01, 0.01]), np.zeros(3)
    las = laspy.LasData(header)
    t = np.arange(n, dtype=np.float64)
    las.x, las.y = t % 5000 * 0.5, t // 5000 * 0.5
    las.z = 100 + np.sin(t / 1e4) * 10 + rng.normal(0, 0.05, n)
    las.intensity = rng.integers(0, 4096, n, dtype=np.uint16)
    las.write(str(path), do_compress=True, laz_backend=laspy.LazBackend.Lazrs)


def noop() -> int:
    return 0


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def own_peak_growth(func: Callable[[Any], int], s: object) -> tuple[int, int]:
    """``func(s)`` and how far it raised this process's resident set above where it started (bytes).

    Read from ``VmHWM`` right after resetting it: ``ru_maxrss`` (the telemetry's source) also
    keeps the peak a thread had when it exited, which no reset clears, so after a thread pool
    has come and gone it can hide a call's own peak.
    """
    reset_peak_rss()
    before = _status_kib("VmRSS")
    n = func(s)
    return n, (_status_kib("VmHWM") - before) * 1024


def iterate_fastq(s: FASTQGZipSlice) -> int:
    return sum(1 for _ in s.iter_records())


def iterate_vcf(s: VCFSlice) -> int:
    return sum(1 for _ in s.record_lines())


def iterate_imzml(s: ImzMLSlice) -> int:
    return sum(1 for _ in s.iter_records())


def iterate_laz(s: PointCloudSlice) -> int:
    return sum(len(points) for points in s.iter_records())


def _growth(fexec: FunctionExecutor, func: object, s: object) -> tuple[int, int, int]:
    """(records, peak RSS growth of iterating ``s`` over a no-op call on the same worker as the
    telemetry reports it, and as the call's own ``VmHWM`` shows it)."""
    base = fexec.call_async(noop)
    assert base.result(timeout=120) == 0
    run = fexec.call_async(own_peak_growth, (func, s))
    n, own = run.result(timeout=600)
    assert base.telemetry is not None
    assert run.telemetry is not None
    assert base.telemetry.worker == run.telemetry.worker
    return n, run.telemetry.peak_rss - base.telemetry.peak_rss, own


def _whole_slice(tmp_path: Path, kind: str, mib: int) -> tuple[object, object, int, object]:
    """(iterating function, one slice covering a new ``mib`` MiB object of ``kind``, its record count,
    a slice of about 1 MiB of it)."""
    path = tmp_path / f"x{mib}.{kind}"
    index = str(tmp_path / f"i{mib}")
    if kind == "fastq":
        _write_fastq_gz(path, mib)
        co = CloudObject.from_path(FASTQGZip, str(path), metadata_url=index).preprocess()
        small = co.partition(partition_reads_batches, num_batches=mib)[0]
        return iterate_fastq, co.partition(partition_reads_batches, num_batches=1)[0], co["num_reads"], small
    if kind == "vcf":
        _write_vcf_gz(path, mib)
        co = CloudObject.from_path(VCF, str(path), metadata_url=index).preprocess()
        small = co.partition(partition_records, num_batches=mib)[0]
        return iterate_vcf, co.partition(partition_records, num_batches=1)[0], co["num_variants"], small
    if kind == "imzml":
        _write_imzml(path, mib)
        co = CloudObject.from_path(ImzML, f"{path}.imzML", metadata_url=index).preprocess()
        (whole,) = co.partition(partition_spectra, num_batches=1)
        assert whole.nbytes > 0.9 * mib * MiB
        return iterate_imzml, whole, co["num_spectra"], co.partition(partition_spectra, num_batches=mib)[0]
    _write_laz(path.with_suffix(".laz"), mib)
    co = CloudObject.from_path(LAS, str(path.with_suffix(".laz")), metadata_url=index).preprocess()
    (whole,) = co.partition(partition_points, num_batches=1)
    assert whole.compressed
    assert whole.point_count * 34 > 0.9 * mib * MiB
    return iterate_laz, whole, whole.point_count, co.partition(partition_points, num_batches=mib)[0]


@pytest.mark.parametrize("kind", ["fastq", "vcf", "imzml", "laz"])
def test_iteration_memory_does_not_grow_with_the_slice(tmp_path: Path, kind: str) -> None:
    growth, own = {}, {}
    with FunctionExecutor(workers=1, progress=False) as fexec:  # one worker: every call shares a process
        # started before the objects are written: a worker forked from a parent that has just
        # freed a large object would reuse that resident memory and hide what iteration holds
        assert fexec.call_async(noop).result(timeout=120) == 0
        for mib in (24, 96):
            func, whole, records, small = _whole_slice(tmp_path, kind, mib)
            # the first iteration imports the format's modules: not the slice's memory
            assert fexec.call_async(func, small).result(timeout=600) > 0
            n, growth[mib], own[mib] = _growth(fexec, func, whole)
            assert n == records
    print(kind, "telemetry", {k: round(v / MiB, 1) for k, v in growth.items()})
    print(kind, "VmHWM", {k: round(v / MiB, 1) for k, v in own.items()})
    for measured in (growth, own):
        assert measured[96] < 64 * MiB, measured
        assert measured[96] - measured[24] < 16 * MiB, measured
