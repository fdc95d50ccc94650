"""Choose the S3 client library: ranged-GET throughput against a real SeaweedFS.

Candidates, measured in one run on one server and one object:
  * obstore  (Rust object_store; ``get_ranges`` / ``get_range_async`` gathered)
  * boto3    (``get_object(Range=...)`` on a thread pool, one client shared)
  * s3fs     (fsspec; ``cat_ranges``, aiobotocore underneath)

For 1, 8 and 32 concurrent 8 MiB ranges, each library fetches the same random
range sets; we report MiB/s and the ratio to boto3 (the common baseline).

Run:  .venv/bin/python bench/storage_ranged_get.py [--object-mib 512] [--rounds 3]
Needs the ``bench`` and ``test`` extras (``pip install -e '.[test,bench]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from xtremehub.testing.seaweedfs import ADMIN_KEY, ADMIN_SECRET, SeaweedFS

MiB = 1024 * 1024
RANGE = 8 * MiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--object-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()

    import boto3
    import obstore
    import s3fs
    from botocore.config import Config
    from obstore.store import S3Store

    with SeaweedFS.start() as server:
        endpoint = server.endpoint_url
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=ADMIN_KEY,
            aws_secret_access_key=ADMIN_SECRET,
            region_name="us-east-1",
            config=Config(max_pool_connections=64, s3={"addressing_style": "path"}),
        )
        client.create_bucket(Bucket="bench")
        size = args.object_mib * MiB
        payload = os.urandom(size)
        client.put_object(Bucket="bench", Key="blob", Body=payload)

        store = S3Store(
            "bench",
            endpoint=endpoint,
            access_key_id=ADMIN_KEY,
            secret_access_key=ADMIN_SECRET,
            region="us-east-1",
            virtual_hosted_style_request=False,
            client_options={"allow_http": True, "pool_max_idle_per_host": "64"},
        )
        fs = s3fs.S3FileSystem(
            key=ADMIN_KEY,
            secret=ADMIN_SECRET,
            endpoint_url=endpoint,
            client_kwargs={"region_name": "us-east-1"},
            config_kwargs={"max_pool_connections": 64, "s3": {"addressing_style": "path"}},
        )
        pool = ThreadPoolExecutor(64)

        def boto_fetch(starts: list[int]) -> int:
            def one(s: int) -> int:
                body = client.get_object(Bucket="bench", Key="blob", Range=f"bytes={s}-{s + RANGE - 1}")["Body"]
                return len(body.read())

            return sum(pool.map(one, starts))

        def obstore_fetch(starts: list[int]) -> int:
            async def gather() -> int:
                parts = await asyncio.gather(
                    *(obstore.get_range_async(store, "blob", start=s, length=RANGE) for s in starts)
                )
                return sum(len(p) for p in parts)

            return asyncio.run(gather())

        def obstore_get_ranges(starts: list[int]) -> int:
            parts = obstore.get_ranges(store, "blob", starts=starts, lengths=[RANGE] * len(starts))
            return sum(len(p) for p in parts)

        def s3fs_fetch(starts: list[int]) -> int:
            parts = fs.cat_ranges(["bench/blob"] * len(starts), starts, [s + RANGE for s in starts])
            return sum(len(p) for p in parts)

        candidates: dict[str, Callable[[list[int]], int]] = {
            "boto3": boto_fetch,
            "obstore(async gather)": obstore_fetch,
            "obstore(get_ranges)": obstore_get_ranges,
            "s3fs(cat_ranges)": s3fs_fetch,
        }
        rng = random.Random(42)
        print(f"object {args.object_mib} MiB on SeaweedFS {endpoint}; range {RANGE // MiB} MiB; rounds {args.rounds}")
        print(f"{'concurrency':>11} {'library':<24} {'MiB/s':>9} {'vs boto3':>9} {'client CPU s/GiB':>17}")
        for conc in args.concurrency:
            range_sets = [
                [rng.randrange(0, size - RANGE) // 4096 * 4096 for _ in range(conc)] for _ in range(args.rounds)
            ]
            results: dict[str, float] = {}
            cpu: dict[str, float] = {}
            for name, fetch in candidates.items():
                fetch(range_sets[0][:1])  # warm connections
                speeds = []
                cpu0, moved = time.process_time(), 0
                for starts in range_sets:
                    t0 = time.perf_counter()
                    got = fetch(starts)
                    dt = time.perf_counter() - t0
                    assert got == RANGE * len(starts), (name, got)
                    speeds.append(got / MiB / dt)
                    moved += got
                results[name] = statistics.median(speeds)
                cpu[name] = (time.process_time() - cpu0) / (moved / 1024**3)
            for name, speed in results.items():
                print(f"{conc:>11} {name:<24} {speed:>9.0f} {speed / results['boto3']:>8.2f}x {cpu[name]:>17.2f}")
        pool.shutdown()


if __name__ == "__main__":
    main()
