"""REST API throughput and latency of a dataset read, with authentication on vs off, one run.

Two ``xhub serve`` processes (uvicorn) share one SQLite catalog holding the dataset: one with
security off (the local single user), one with ``--oidc-issuer`` (an ES256 token from the
embedded issuer checked by ``OIDCValidator``, with its validated-token cache) and ``--policy``
(a Cedar policy authorising the read). Two client threads, each with its own keep-alive
``httpx.Client``, send ``GET /api/v1/datasets/<id>`` back to back; each round measures both
servers (order alternating), the median of the rounds and the spread are printed, with the
ratio auth on / off.

Run:  .venv/bin/python bench/web_api.py [--quick] [--requests 1500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from xtremehub.catalog import open_catalog
from xtremehub.config import Settings
from xtremehub.security.issuer import EmbeddedIssuer, IssuerConfig

THREADS = 2
POLICY = '@id("readers") permit(principal in XHub::Role::"reader", action == XHub::Action::"read", resource);\n'


@contextmanager
def serve(home: Path, catalog: str, *args: str) -> Iterator[str]:
    """``xhub serve`` in a subprocess on a free port; yields its URL."""
    command = [sys.executable, "-c", "from xtremehub.cli import main; main()", "--home", str(home)]
    command += ["serve", "--port", "0", "--catalog", catalog, *args]
    env = {**os.environ, "XHUB_CONFIG": str(home / "none.toml")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        if not select.select([process.stdout], [], [], 120)[0]:
            raise RuntimeError("xhub serve did not start")
        line = process.stdout.readline()
        if not line.startswith("xhub serve: "):
            raise RuntimeError(f"xhub serve failed: {line}{process.stderr.read() if process.stderr else ''}")
        yield line.split()[2]
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)


def load(url: str, path: str, headers: dict[str, str], requests: int) -> tuple[float, list[float]]:
    """``requests`` GETs per thread over keep-alive connections; (seconds, latencies in ms)."""
    latencies: list[list[float]] = [[] for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS + 1)

    def client(slot: list[float]) -> None:
        with httpx.Client(base_url=url, headers=headers) as http:
            assert http.get(path).status_code == 200  # connection open, caches warm
            barrier.wait()
            for _ in range(requests):
                t0 = time.perf_counter()
                r = http.get(path)
                slot.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    raise RuntimeError(f"GET {path}: {r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=client, args=(slot,)) for slot in latencies]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, [x for slot in latencies for x in slot]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1500, help="requests per client thread per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="200 requests per thread, 3 rounds")
    args = parser.parse_args()
    requests = 200 if args.quick else args.requests
    with tempfile.TemporaryDirectory(prefix="xhub-bench-web-") as tmp, EmbeddedIssuer(IssuerConfig()) as issuer:
        root = Path(tmp)
        home = root / "home"
        home.mkdir()
        catalog_url = f"sqlite:///{root / 'catalog.db'}"
        with open_catalog(catalog_url, settings=Settings(home=home)) as catalog:
            ds = catalog.register(
                "s3://lab/run7/reads.fastq.gz", actor="alice", title="Run 7 reads", tags=("lungs",),
                facts={"reads": 1_000_000, "bases": 150_000_000}, source_version="etag-1", format="fastq.gz",
            )  # fmt: skip
        (root / "policies").mkdir()
        (root / "policies" / "read.cedar").write_text(POLICY)
        path = f"/api/v1/datasets/{ds.id}"
        token = {"Authorization": f"Bearer {issuer.issue('rita', roles=['reader'], lifetime=3600)}"}
        results: dict[str, list[tuple[float, float, float]]] = {"off": [], "on": []}
        secured = ("--oidc-issuer", issuer.url, "--policy", str(root / "policies"))
        with serve(home, catalog_url) as off_url, serve(home, catalog_url, *secured) as on_url:
            servers = {"off": (off_url, {}), "on": (on_url, token)}
            for r in range(args.rounds):
                for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
                    url, headers = servers[mode]
                    seconds, lat = load(url, path, headers, requests)
                    results[mode].append((len(lat) / seconds, pct(lat, 0.5), pct(lat, 0.95)))
    print(f"GET {path} x {THREADS} threads x {requests} requests, {args.rounds} rounds (median (min-max))")
    print("| auth | req/s | p50 ms | p95 ms | req/s vs off | p50 vs off |")
    print("|---|---:|---:|---:|---:|---:|")
    med = {m: [statistics.median(x[i] for x in results[m]) for i in range(3)] for m in results}
    for mode in ("off", "on"):
        cells = []
        for i, fmt in ((0, "{:.0f}"), (1, "{:.2f}"), (2, "{:.2f}")):
            vals = [x[i] for x in results[mode]]
            cells.append(f"{fmt.format(med[mode][i])} ({fmt.format(min(vals))}-{fmt.format(max(vals))})")
        ratio = f"{med[mode][0] / med['off'][0]:.2f}x | {med[mode][1] / med['off'][1]:.2f}x"
        print(f"| {mode} | {' | '.join(cells)} | {ratio} |")


if __name__ == "__main__":
    main()
