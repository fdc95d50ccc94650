"""Cost of authentication, authorisation and TLS on stream-server appends, one run.

An in-process stream server over an embedded store (fsync'd WAL) is run three ways: plain,
with auth (every connection presents an ES256 token checked by ``OIDCValidator`` against the
embedded issuer, every append authorised by a role check standing in for the policy engine,
decisions remembered per connection for ``authz_cache_ttl``), and auth + TLS (a self-signed
certificate for 127.0.0.1). For each, one writer appends 1 KiB events: ``--events`` sequential
appends (acknowledgement latency p50/p95) and then a window of 32 in flight (throughput).
Configurations alternate per round; the median of the rounds and ratios to plain are printed.

Run:  .venv/bin/python bench/security_streams.py [--events 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from xtremehub.errors import Forbidden
from xtremehub.security.authz import AccessRequest, Decision
from xtremehub.security.issuer import EmbeddedIssuer, IssuerConfig
from xtremehub.security.oidc import OIDCConfig, OIDCValidator
from xtremehub.streams import StreamManager
from xtremehub.streams.server import ServerConfig, serve_background
from xtremehub.streams.server.command import server_tls

EVENT = b"x" * 1024
WINDOW = 32


class WritersMayWrite:
    """Allows writes to holders of the ``writer`` role (the policy engine's place)."""

    def decide(self, request: AccessRequest) -> Decision:
        return Decision("writer" in request.identity.roles, "role writer", "bench")

    def check(self, request: AccessRequest) -> Decision:
        decision = self.decide(request)
        if not decision.allowed:
            raise Forbidden(f"{request.identity.subject}: {decision.reason}")
        return decision


def self_signed(directory: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 signed by its own key: (cert file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder(subject_name=name, issuer_name=name, public_key=key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pkcs8 = serialization.PrivateFormat.PKCS8
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def measure(url: str, events: int, client: dict[str, Any]) -> tuple[float, float, float]:
    """(p50 ms, p95 ms, events/s) of one writer."""
    with StreamManager(url, **client) as manager:
        name = f"s{time.monotonic_ns()}"
        manager.create_stream("bench", name)
        writer = manager.create_writer("bench", name)
        latencies = []
        for _ in range(events):
            start = time.perf_counter()
            writer.write_event(EVENT).result()
            latencies.append(time.perf_counter() - start)
        writer.close()
        windowed = manager.create_writer("bench", name, max_in_flight=WINDOW)
        start = time.perf_counter()
        futures = [windowed.write_event(EVENT) for _ in range(events * 2)]
        for future in futures:
            future.result()
        rate = events * 2 / (time.perf_counter() - start)
        windowed.close()
    latencies.sort()
    return latencies[len(latencies) // 2] * 1e3, latencies[int(len(latencies) * 0.95)] * 1e3, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float, float]]] = {"plain": [], "auth": [], "auth+tls": []}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedIssuer(IssuerConfig(token_lifetime=3600)) as issuer:
        root = Path(tmp)
        cert, key = self_signed(root)
        validator = OIDCValidator(OIDCConfig(issuer=issuer.url, audience="xtremehub"))
        token = issuer.issue("bench", roles=["writer"], lifetime=3600)
        setups = {
            "plain": (ServerConfig(), {}),
            "auth": (ServerConfig(validator=validator, authorizer=WritersMayWrite()), {"token": token}),
            "auth+tls": (
                ServerConfig(validator=validator, authorizer=WritersMayWrite(), ssl=server_tls(cert, key)),
                {"token": token, "tls_ca": cert},
            ),
        }
        embedded = StreamManager.embedded(root / "data", maintenance_interval=3600)
        try:
            embedded.create_scope("bench")
            for _ in range(args.rounds):
                for name, (config, client) in setups.items():
                    with serve_background(embedded.store, embedded.controller, config) as server:
                        results[name].append(measure(server.url, args.events, client))
        finally:
            embedded.close()
    print(
        f"1 KiB appends, one writer: {args.events} sequential (ack latency), {args.events * 2} with {WINDOW} in flight"
    )
    base = [statistics.median(r[i] for r in results["plain"]) for i in range(3)]
    for name, rows in results.items():
        p50, p95, rate = (statistics.median(r[i] for r in rows) for i in range(3))
        spread = f"[{min(r[2] for r in rows):.0f}-{max(r[2] for r in rows):.0f}]"
        print(
            f"{name:9s} p50 {p50:6.3f} ms  p95 {p95:6.3f} ms  {rate:8.0f} events/s {spread}"
            f"   vs plain: p95 {p95 / base[1]:.2f}x, throughput {rate / base[2]:.2f}x"
        )


if __name__ == "__main__":
    main()
