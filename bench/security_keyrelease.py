"""Key release latency (issue 12): p50/p95 of one release, embedded and over HTTPS, vs a cached unwrap.

One key service (a temporary directory, one dataset, a policy admitting the measured task) is
created; each round then times ``--requests`` sequential releases in each mode:

* ``embedded``: :func:`fetch_kek` against the in-process :class:`KeyService` (job token check,
  replay cache, policy, evidence, HPKE seal to a fresh X25519 key, and the worker's side:
  key generation, attestation, opening);
* ``https``: the same through ``xhub keys serve`` (a separate process, as deployed) with TLS
  (local CA), one kept-alive connection;
* ``https-mtls``: the same with mutual TLS;
* ``https-thread``: ``KeyServer`` in a thread of this process (client and server share the GIL);
* ``https-new-conn``: a new TLS connection per release (what the first release of a worker pays);
* ``cached-unwrap`` (the baseline): ``ServiceKeys.unwrap`` of a data key once the KEK is
  released -- what every later object costs.

Per mode the median over rounds of the p50 and p95 is printed with the spread (min-max) and the
ratio of the p50 to the cached unwrap's p50.

Run:  PYTHONPATH=src .venv/bin/python bench/security_keyrelease.py [--requests 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import xtremehub
from xtremehub.security.attest import SoftwareAttester, measure
from xtremehub.security.identity import Identity
from xtremehub.security.keypolicy import KeyPolicy
from xtremehub.security.keyservice import KeyService
from xtremehub.security.keyservice_client import KeyClient, ServiceKeys, fetch_kek
from xtremehub.security.keyservice_http import KeyServer
from xtremehub.security.keyservice_store import MasterKey
from xtremehub.security.pki import init_pki

MASTER = b"B" * 32


def task(x: int) -> int:
    return x


@contextlib.contextmanager
def serve(root: Path, tls_dir: Path, env: dict[str, str], *extra: str) -> Iterator[str]:
    """``xhub keys serve`` in its own process; yields its URL."""
    cmd = [sys.executable, "-c", "from xtremehub.cli import main; main()", "keys", "--dir", str(root / "keys")]
    cmd += ["serve", "--port", "0", "--tls-dir", str(tls_dir), *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        yield line.split(" on ")[1].split()[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def timed(n: int, once: Callable[[], object]) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        once()
        samples.append(time.perf_counter() - t0)
    return percentiles(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="xhub-bench-keys-"))
    service = KeyService(root / "keys", MasterKey(MASTER), replay_capacity=10_000_000)
    service.create_dataset(
        KeyPolicy("bench", roles=frozenset({"r"}), purposes=frozenset({"p"}), measurements=frozenset({measure(task)}))
    )
    token = service.issue_job_token(
        identity=Identity("bench", roles=frozenset({"r"})), job_id="b", datasets=["bench"], purpose="p"
    )
    attester = SoftwareAttester(task)
    pki = init_pki(root / "tls", hosts=["127.0.0.1"])
    tls = {"cert_file": pki.server_cert, "key_file": pki.server_key}
    keys = ServiceKeys(service, token, attester)
    blob = keys.wrap("bench", b"k" * 32)

    results: dict[str, list[tuple[float, float]]] = {}
    env = {**os.environ, "XHUB_MASTER_KEY": MASTER.hex(), "PYTHONPATH": str(Path(xtremehub.__file__).parents[1])}
    with (
        KeyServer(service, **tls) as thread_server,  # type: ignore[arg-type]
        serve(root, pki.directory, env) as https_url,
        serve(root, pki.directory, env, "--mtls") as mtls_url,
    ):
        client = KeyClient(https_url, ca_file=pki.ca_cert)
        tclient = KeyClient(thread_server.url, ca_file=pki.ca_cert)
        mclient = KeyClient(mtls_url, ca_file=pki.ca_cert, cert_file=pki.client_cert, key_file=pki.client_key)

        def new_client() -> KeyClient:
            return KeyClient(https_url, ca_file=pki.ca_cert)

        modes: dict[str, Callable[[], object]] = {
            "cached-unwrap": lambda: keys.unwrap("bench", blob),
            "embedded": lambda: fetch_kek(service, token, "bench", None, attester),
            "https": lambda: fetch_kek(client, token, "bench", None, attester),
            "https-mtls": lambda: fetch_kek(mclient, token, "bench", None, attester),
            "https-thread": lambda: fetch_kek(tclient, token, "bench", None, attester),
            "https-new-conn": lambda: fetch_kek(new_client(), token, "bench", None, attester),
        }
        for once in modes.values():  # warm up: connections, caches
            for _ in range(5):
                once()
        for _ in range(args.rounds):
            for name, once in modes.items():
                n = args.requests if name != "https-new-conn" else max(20, args.requests // 5)
                results.setdefault(name, []).append(timed(n, once))
        for c in (client, tclient, mclient):
            c.close()

    base = statistics.median(p50 for p50, _ in results["cached-unwrap"])
    print(f"key release, {args.requests} requests x {args.rounds} rounds (https-new-conn: 1/5 as many)")
    print(f"{'mode':<16}{'p50 us':>10}{'(spread)':>22}{'p95 us':>10}{'(spread)':>22}{'p50 / cached unwrap':>22}")
    for name, rows in results.items():
        p50s, p95s = [r[0] * 1e6 for r in rows], [r[1] * 1e6 for r in rows]
        print(
            f"{name:<16}{statistics.median(p50s):>10.0f}{f'({min(p50s):.0f}-{max(p50s):.0f})':>22}"
            f"{statistics.median(p95s):>10.0f}{f'({min(p95s):.0f}-{max(p95s):.0f})':>22}"
            f"{statistics.median(p50s) / (base * 1e6):>21.1f}x"
        )


if __name__ == "__main__":
    main()
