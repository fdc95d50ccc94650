"""FASTQ.gz connector, CPU seconds only: preprocessing and slice reads in this one process.

CPU time of this process is far less sensitive than wall time to other load on the machine,
so it compares two versions of the code on a busy machine: run it with PYTHONPATH pointing at
each tree in turn (alternating, repeated) on the same local file, e.g. the one that
``bench/fastq_gzip.py`` generates:

    PYTHONPATH=<tree>/src .venv/bin/python bench/fastq_gzip_cpu.py /tmp/xhub-bench/reads-1024MiB.fastq.gz <tag>

It indexes the file serially (an in-process executor), cuts 64 slices, reads every slice.

``--parts N`` then splits a slice's CPU phase by phase, on N of the slices (mean over them of
the best of ``--reps`` runs each, milliseconds): the whole slice path as the scan's map function
runs it (records and the newline count), the inflate alone, the record layer alone
(``FastqRecords.feed`` over the slice's text, already inflated) and in it the newline positions,
and the map function's newline count. ``--s3`` adds what reading the slice from SeaweedFS costs
(a server started on loopback, the file uploaded): this process's CPU to fetch the slice's
compressed range (request and body), to make a 1-byte ranged GET (the request alone), and
SeaweedFS's CPU per slice GET.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastq_gzip import _inflate, _mem_source, newlines, weed_cpu
from seaweed_object import object_on_seaweedfs
from xtremehub.connectors import CloudObject
from xtremehub.connectors.formats.genomics.fastq_records import FastqRecords
from xtremehub.connectors.genomics import FASTQGZip, FASTQGZipSlice, partition_reads_batches
from xtremehub.storage import open_store


class InProcess:
    """A futures executor that runs everything at once, here: ``map`` gives the results."""

    def map(self, func: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return [func(*item) for item in items]  # the mapper hands argument tuples

    def get_result(self, fs: list[Any]) -> list[Any]:
        return fs


def _text(s: FASTQGZipSlice) -> list[bytes]:
    """The slice's text as the record layer gets it (the inflater's pieces from ``record_start``), up
    to the end of its last record."""
    need = sum(len(block.data) for block in s._blocks(_mem_source(s)))
    chunks: list[bytes] = []
    with s.text(_mem_source(s)) as text:
        for chunk in text:
            chunks.append(bytes(chunk))
            need -= len(chunk)
            if need <= 0:
                break
    return chunks


def _best(run: Callable[[], object], reps: int) -> float:
    """The least CPU seconds of ``reps`` runs of ``run``."""
    best = float("inf")
    for _ in range(reps):
        cpu = time.process_time()
        run()
        best = min(best, time.process_time() - cpu)
    return best


def _records(s: FASTQGZipSlice, chunks: list[bytes]) -> None:
    records = FastqRecords(s.url, s.record_start)
    for chunk in chunks:
        records.feed(chunk)


def slice_parts(slices: Sequence[FASTQGZipSlice], sample: int, reps: int) -> tuple[dict[str, float], float]:
    """Milliseconds of CPU per slice, phase by phase (mean over ``sample`` slices of the best of ``reps``),
    and the slices' mean MiB of text."""
    picked = list(slices[1 :: max(1, len(slices) // sample)][:sample])
    times: dict[str, list[float]] = {}
    text: list[int] = []
    for s in picked:
        chunks = _text(s)
        text.append(sum(len(c) for c in chunks))
        upto = sum(len(c) for c in chunks) + s.record_start - s.checkpoint.uncompressed
        runs: dict[str, Callable[[], object]] = {
            "slice path: records + newline count": lambda s=s: [newlines(b.data) for b in s._blocks(_mem_source(s))],
            "inflate alone": lambda s=s, upto=upto: _inflate(s, upto),
            "record layer (FastqRecords.feed)": lambda s=s, chunks=chunks: _records(s, chunks),
            "  of which newline positions": lambda chunks=chunks: [
                np.flatnonzero(np.frombuffer(c, dtype=np.uint8) == 10) for c in chunks
            ],
            "map function's newline count": lambda chunks=chunks: [newlines(c) for c in chunks],
        }
        for name, run in runs.items():
            times.setdefault(name, []).append(_best(run, reps))
    return {name: 1e3 * statistics.mean(v) for name, v in times.items()}, statistics.mean(text) / 2**20


def s3_parts(local: Path, slices: Sequence[FASTQGZipSlice], sample: int, reps: int) -> dict[str, float]:
    """Milliseconds of CPU per slice to read it from SeaweedFS: this process's fetch and request, the server's."""
    picked = list(slices[1 :: max(1, len(slices) // sample)][:sample])
    with object_on_seaweedfs(local, "reads.fastq.gz") as (url, _):
        here = [dataclasses.replace(s, url=url) for s in picked]
        store, key = open_store(url)

        def fetch(s: FASTQGZipSlice) -> None:
            src = _mem_source(s)
            while src.pos < s.planned_end and src.read():
                pass
            src.close()

        fetch(here[0])
        out = {
            "fetch the slice from S3 (request + body)": statistics.mean(
                _best(lambda s=s: fetch(s), reps) for s in here
            ),
            "a 1-byte ranged GET (the request alone)": _best(lambda: list(store.iter_range(key, 1000, 1001)), 5 * reps),
        }
        server = weed_cpu()
        for s in here:
            fetch(s)
        out["SeaweedFS per slice GET"] = (weed_cpu() - server) / len(here)
    return {name: 1e3 * v for name, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="a local FASTQ.gz")
    parser.add_argument("tag", help="label of this run (also names the index file)")
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--parts", type=int, default=0, help="slices to split phase by phase (0: none)")
    parser.add_argument("--reps", type=int, default=5, help="runs of each phase per slice (the least counts)")
    parser.add_argument("--s3", action="store_true", help="with --parts: also reading the slices from SeaweedFS")
    args = parser.parse_args()
    index_url = str(args.path.parent / f".{args.path.name}.{args.tag}.xhidx")
    co = CloudObject.from_path(FASTQGZip, str(args.path), metadata_url=index_url)
    cpu, wall = time.process_time(), time.perf_counter()
    co.preprocess(InProcess(), force=True)  # type: ignore[arg-type]
    pre_cpu, pre_wall = time.process_time() - cpu, time.perf_counter() - wall
    slices = co.partition(partition_reads_batches, num_batches=args.slices)
    cpu, wall = time.process_time(), time.perf_counter()
    nbytes = sum(len(chunk) for s in slices for chunk in s.iter_chunks())
    read_cpu, read_wall = time.process_time() - cpu, time.perf_counter() - wall
    assert nbytes == co["uncompressed_size"]
    print(
        f"{args.tag}: checkpoints {co['checkpoints']}, preprocess cpu {pre_cpu:.2f}s (wall {pre_wall:.2f}s), "
        f"read {args.slices} slices cpu {read_cpu:.2f}s = {nbytes / 2**20 / read_cpu:.0f} MiB/s per core "
        f"(wall {read_wall:.2f}s)"
    )
    if args.parts:
        parts, mib = slice_parts(slices, args.parts, args.reps)
        if args.s3:
            parts |= s3_parts(args.path, slices, args.parts, args.reps)
        print(
            f"{args.tag}: CPU per slice, ms (mean of {args.parts} slices, {mib:.1f} MiB of text; best of {args.reps})"
        )
        for name, ms in parts.items():
            print(f"  {name:45s} {ms:6.2f}")


if __name__ == "__main__":
    main()
