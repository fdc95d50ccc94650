"""CSV preprocessing: the quote-aware record index against reading the file with Python's ``csv``.

One generated CSV (quoted fields with LF and CRLF newlines, escaped quotes, empty
fields, UTF-8), on local disk. Measured in one run:
  * baseline: ``csv.reader`` over the whole file, counting non-blank records (what
    ``num_rows`` must equal);
  * ours, serial: ``CloudObject(CSV).preprocess()`` without an executor (speculative
    both-state NumPy scan of 16 MiB chunks, stitched in order);
  * ours, mapped: the same on ``FunctionExecutor(workers=N)``;
  * ours, exact serial scan: the regular-expression fallback used when a quote
    stands inside an unquoted field;
  * for reference, physical lines counted with ``bytes.count`` (the old, wrong index).

Every row count is checked against the baseline. Times are the best of ``--rounds``.

Run:  .venv/bin/python bench/csv_index.py [--mib 100] [--rounds 3] [--workers 2] [--plain]
"""

from __future__ import annotations

import argparse
import csv
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from xtremehub import FunctionExecutor
from xtremehub.connectors import CloudObject
from xtremehub.connectors.formats.text.records import Dialect, exact_scan
from xtremehub.connectors.text import CSV

MiB = 1024 * 1024
WORDS = ["plain", "with space", "comma, inside", '"say ""hi"""', '"two\nlines"', '"crlf\r\ninside"', "", '"ünï©ødé"']


def generate(path: Path, mib: int, seed: int = 1, *, plain: bool = False) -> None:
    """About ``mib`` MiB of CSV: 6 columns; unless ``plain``, some fields quoted, some with newlines inside."""
    rng = random.Random(seed)
    target = mib * MiB
    words = ["plain", "with space", "a-b-c", "x", "", "ünï©ødé"] if plain else WORDS
    with path.open("wb") as fh:
        fh.write(b"id,chrom,pos,text,note,value\r\n")
        written, i = 0, 0
        while written < target:
            block = []
            for _ in range(10_000):
                row = f"{i},chr{rng.randint(1, 22)},{rng.randint(1, 10**8)},{rng.choice(words)},{rng.choice(words)},"
                block.append(row + f"{rng.random():.6f}" + ("\r\n" if i % 3 else "\n"))
                i += 1
            data = "".join(block).encode()
            fh.write(data)
            written += len(data)


def best(rounds: int, func: Callable[[], int]) -> tuple[float, int]:
    times, result = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--plain", action="store_true", help="no quotes at all (the common numeric CSV)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        generate(path, args.mib, plain=args.plain)
        size = path.stat().st_size
        url, meta = str(path), str(Path(tmp) / "idx")

        def python_csv() -> int:
            with path.open(newline="", encoding="utf-8") as fh:
                return sum(1 for row in csv.reader(fh) if row) - 1  # minus the header

        def ours(executor: FunctionExecutor | None = None) -> int:
            co = CloudObject.from_path(CSV, url, metadata_url=meta).preprocess(executor, force=True)
            return int(co["num_rows"])

        def ours_exact() -> int:
            start = len(b"id,chrom,pos,text,note,value\r\n")
            return exact_scan(url, size, start, Dialect(), max(1, size // 16384)).num_rows

        def physical_lines() -> int:
            return path.read_bytes().count(b"\n") - 1

        results: list[tuple[str, float, int]] = []
        results.append(("csv.reader, whole file (baseline)", *best(args.rounds, python_csv)))
        results.append(("ours, serial", *best(args.rounds, ours)))
        with FunctionExecutor(workers=args.workers) as fexec:
            ours(fexec)  # warm the workers
            results.append((f"ours, FunctionExecutor(workers={args.workers})", *best(args.rounds, lambda: ours(fexec))))
        results.append(("ours, exact serial scan (stray quotes)", *best(args.rounds, ours_exact)))
        results.append(("physical lines, bytes.count (wrong)", *best(args.rounds, physical_lines)))

    base_time, base_rows = results[0][1], results[0][2]
    kind = "no quotes" if args.plain else "quoted fields, newlines inside some"
    print(f"CSV of {size / MiB:.1f} MiB ({kind}), {base_rows} records; best of {args.rounds}")
    print(f"{'method':46} {'seconds':>8} {'MiB/s':>8} {'speed-up':>9}  rows")
    for name, seconds, rows in results:
        check = "ok" if rows == base_rows else f"differs: {rows}"
        print(f"{name:46} {seconds:8.3f} {size / MiB / seconds:8.1f} {base_time / seconds:8.1f}x  {check}")


if __name__ == "__main__":
    main()
