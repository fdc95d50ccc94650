"""FASTQ.gz connector, CPU seconds only: preprocessing and slice reads in this one process.

CPU time of this process is far less sensitive than wall time to other load on the machine,
so it compares two versions of the code on a busy machine: run it with PYTHONPATH pointing at
each tree in turn (alternating, repeated) on the same local file, e.g. the one that
``bench/fastq_gzip.py`` generates:

    PYTHONPATH=<tree>/src .venv/bin/python bench/fastq_gzip_cpu.py /tmp/xhub-bench/reads-1024MiB.fastq.gz <tag>

It indexes the file serially (an in-process executor), cuts 64 slices, reads every slice.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from xtremehub.connectors import CloudObject
from xtremehub.connectors.genomics import FASTQGZip, partition_reads_batches


class InProcess:
    """A futures executor that runs everything at once, here: ``map`` gives the results."""

    def map(self, func: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return [func(*item) for item in items]  # the mapper hands argument tuples

    def get_result(self, fs: list[Any]) -> list[Any]:
        return fs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="a local FASTQ.gz")
    parser.add_argument("tag", help="label of this run (also names the index file)")
    parser.add_argument("--slices", type=int, default=64)
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


if __name__ == "__main__":
    main()
