"""Surgery-video load through a stream server with security on vs off, same run.

Three cameras write 500 KB frames at 30 fps each to their own stream of a stream server run as
its own process (``python -m xtremehub.streams.server``, fsync'd WAL). Configurations,
alternating per round:

- ``plain``: no token, no TLS, plaintext events;
- ``secure``: OIDC bearer tokens validated by the server (embedded issuer), every request
  authorised by Cedar policies (``--policy``) and recorded in a hash-chained audit log
  (``--audit-log``), TLS, and the three streams created with ``encryption=`` (each frame
  AES-256-GCM encrypted in the writer with the stream's own key);
- ``at-rest``: the same security, with the server encrypting WAL and LTS (``--encrypt``)
  instead of the clients encrypting events.

Per configuration: frame acknowledgement latency at the paced rate (p50/p95/p99 over
``--seconds`` of 3 x 30 fps), then unpaced throughput (3 writers, 8 frames in flight each).
Targets (issue 12): p95 within 15 % of plain, throughput >= 0.9x.

Run:  .venv/bin/python bench/security_video.py [--seconds 10] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from xtremehub.security.issuer import EmbeddedIssuer, IssuerConfig
from xtremehub.security.keyring import FileKeyring
from xtremehub.security.pki import init_pki
from xtremehub.streams import StreamManager

FRAME = 500_000
FPS = 30
CAMERAS = 3
POLICY = (
    '@id("surgery-writes")\n'
    'permit(principal, action, resource in XHub::Scope::"surgery");\n'
    '@id("surgery-lists")\n'
    'permit(principal, action, resource == XHub::Scope::"*");\n'
)


@contextmanager
def server(root: Path, extra: list[str], env: dict[str, str]) -> Iterator[str]:
    command = [sys.executable, "-m", "xtremehub.streams.server", "--data", str(root / "data"), "--port", "0"]
    process = subprocess.Popen(
        [*command, "--maintenance-interval", "3600", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env},
    )
    try:
        assert process.stdout is not None
        if not select.select([process.stdout], [], [], 60)[0]:
            raise RuntimeError(f"the stream server did not start: {process.stderr.read() if process.stderr else ''}")
        yield process.stdout.readline().split()[-1]
    finally:
        process.terminate()
        process.communicate(timeout=60)


def paced(manager: StreamManager, seconds: float) -> list[float]:
    """Ack latencies (ms) of 3 cameras at 30 fps for ``seconds``."""
    latencies: list[float] = []
    lock = threading.Lock()
    frame = os.urandom(FRAME)

    def camera(n: int) -> None:
        own: list[float] = []
        with manager.create_writer("surgery", f"cam{n}", max_in_flight=8) as writer:
            start = time.perf_counter()
            frames = int(seconds * FPS)
            pending = []
            for i in range(frames):
                due = start + i / FPS
                time.sleep(max(0.0, due - time.perf_counter()))
                t0 = time.perf_counter()
                future = writer.write_event(frame, routing_key=f"cam{n}")
                future.add_done_callback(lambda _f, t0=t0: own.append((time.perf_counter() - t0) * 1000))
                pending.append(future)
            for future in pending:
                future.result()
        with lock:
            latencies.extend(own)

    threads = [threading.Thread(target=camera, args=(n,)) for n in range(CAMERAS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def unpaced(manager: StreamManager, frames: int) -> float:
    """MB/s of 3 writers with 8 frames in flight each."""
    frame = os.urandom(FRAME)

    def camera(n: int) -> None:
        with manager.create_writer("surgery", f"cam{n}", max_in_flight=8) as writer:
            for _ in range(frames):
                writer.write_event(frame, routing_key=f"cam{n}")
            writer.flush()

    threads = [threading.Thread(target=camera, args=(n,)) for n in range(CAMERAS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return CAMERAS * frames * FRAME / (time.perf_counter() - t0) / 1e6


def run(config: str, seconds: float, frames: int, issuer: EmbeddedIssuer, pki: Any, base: Path) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(dir=base))
    extra: list[str] = []
    env: dict[str, str] = {}
    client: dict[str, Any] = {}
    keys_url = f"file://{base / 'keyring.json'}"
    if config != "plain":
        (root / "policies").mkdir()
        (root / "policies" / "surgery.cedar").write_text(POLICY)
        extra += ["--oidc-issuer", issuer.url, "--policy", str(root / "policies")]
        extra += ["--audit-log", str(root / "audit.jsonl"), "--audit-key", str(root / "audit.key")]
        extra += ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
        client = {"token": issuer.issue("surgeon", roles=["surgery"]), "tls_ca": str(pki.ca_cert)}
    if config == "at-rest":
        extra.append("--encrypt")
        env["XHUB_ENCRYPTION_KEYS"] = keys_url
    with server(root, extra, env) as url, StreamManager(url, keys=keys_url, **client) as manager:
        manager.create_scope("surgery")
        for n in range(CAMERAS):
            encryption = "surgery" if config == "secure" else None
            manager.create_stream("surgery", f"cam{n}", encryption=encryption)
        lat = paced(manager, seconds)
        mbps = unpaced(manager, frames)
    q = statistics.quantiles(lat, n=100)
    return {"p50": q[49], "p95": q[94], "p99": q[98], "mbps": mbps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--frames", type=int, default=120, help="frames per writer in the unpaced run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="3 s paced, 30 frames unpaced, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.frames, args.rounds = 3.0, 30, 1
    configs = ["plain", "secure", "at-rest"]
    results: dict[str, list[dict[str, float]]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedIssuer(IssuerConfig(audience="xtremehub")) as issuer:
        base = Path(tmp)
        FileKeyring(base / "keyring.json").create("surgery")
        pki = init_pki(base / "tls", hosts=["127.0.0.1"])
        for r in range(args.rounds):
            for config in configs if r % 2 == 0 else reversed(configs):
                results[config].append(run(config, args.seconds, args.frames, issuer, pki, base))
                print(f"round {r + 1} {config:8s} " + " ".join(f"{k} {v:7.1f}" for k, v in results[config][-1].items()))
    load = os.getloadavg()[0]
    print(f"\nload average {load:.1f}; {CAMERAS} x {FPS} fps x {FRAME // 1000} KB; medians of {args.rounds} rounds")
    head = ("config", "p50 ms", "p95 ms", "p99 ms", "MB/s", "p95/plain", "MB/s/plain")
    print(f"{head[0]:9s} " + " ".join(f"{h:>10s}" for h in head[1:]))
    med = {c: {k: statistics.median(r[k] for r in results[c]) for k in results[c][0]} for c in configs}
    for c in configs:
        m = med[c]
        print(
            f"{c:9s} {m['p50']:10.1f} {m['p95']:10.1f} {m['p99']:10.1f} {m['mbps']:10.1f} "
            f"{m['p95'] / med['plain']['p95']:9.2f}x {m['mbps'] / med['plain']['mbps']:9.2f}x"
        )


if __name__ == "__main__":
    main()
