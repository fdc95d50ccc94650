"""The demo's security part: identities, an encrypted dataset read through key release, an
encrypted stream, and a verified audit log, all on the embedded defaults.

:func:`run_security_demo` sets up, under ``settings.home/security-demo`` (fresh each run):

* an embedded OpenID issuer with two users: ``alice`` (role ``research``) and ``bob`` (none);
  both log in with the password grant at its token endpoint;
* a local CA (``xhub security init``) and the key service over HTTPS; the dataset ``reads``
  gets a KEK and a key policy: role ``research``, purpose ``research``, and the code
  measurement of the XtremeHub installation;
* the sample FASTQ.gz copied to ``enc+file://`` (chunked AES-256-GCM, data key wrapped by the
  dataset's KEK, fetched through key release);
* alice's job (a job token derived from her token) preprocesses and reads the encrypted
  object's slices on two workers, each releasing the KEK inside the worker; the read counts
  equal the plain file's; bob's job is refused with the key service's message;
* an encrypted stream store (WAL and LTS) written and read back, with no plaintext on disk;
* every authorisation decision and key release in a hash-chained, signed audit log that
  ``audit verify`` accepts.

Example:
    >>> SecurityReport().ok
    False
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xtremehub import storage
from xtremehub.compute import FunctionExecutor
from xtremehub.config import EncryptionSettings, Settings
from xtremehub.demo.fastq_job import read_stats, sum_stats
from xtremehub.demo.sample_data import ensure_sample_fastq
from xtremehub.errors import SecurityError
from xtremehub.security.jobcreds import JobCredentials

__all__ = ["SecurityReport", "run_security_demo"]

DATASET = "reads"


@dataclass
class SecurityReport:
    """What the security part did and found."""

    issuer: str = ""
    key_service: str = ""
    object_url: str = ""
    plain_reads: int = 0
    alice_reads: int = 0
    slices: int = 0
    bob_refusal: str = ""
    stream_events: int = 0
    audit_records: int = 0
    audit_problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    def summary(self) -> str:
        lines = [
            "XtremeHub demo: security (OIDC identities, encrypted data, key release, audit)",
            f"  issuer       {self.issuer} (embedded): alice (role research), bob (no role), password grant",
            f"  key service  {self.key_service} (TLS, local CA): dataset {DATASET!r} for role research, "
            "purpose research, measured code",
            f"  dataset      {self.object_url} (AES-256-GCM chunks, data key wrapped by the dataset KEK)",
            f"  alice        {self.slices} slices on 2 workers, KEK released inside each worker: "
            f"{self.alice_reads:,} reads (plain file: {self.plain_reads:,})",
            f"  bob          refused: {self.bob_refusal}",
            f"  stream       {self.stream_events} events written and read back from an encrypted store (WAL + LTS)",
            f"  audit        {self.audit_records} records, hash-chained and signed"
            + ("" if not self.audit_problems else f"; problems: {'; '.join(self.audit_problems)}"),
            f"  time         {self.seconds:.2f}s",
        ]
        lines += [f"  check        {name}: {'OK' if ok else 'FAILED'}" for name, ok in self.checks.items()]
        return "\n".join(lines)


@contextlib.contextmanager
def _job_token(token: str) -> Iterator[None]:
    """Make ``token`` this process's (and its workers') job token for the duration."""
    before = os.environ.get("XHUB_JOB_TOKEN")
    os.environ["XHUB_JOB_TOKEN"] = token
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("XHUB_JOB_TOKEN", None)
        else:
            os.environ["XHUB_JOB_TOKEN"] = before


def _read_encrypted(url: str, settings: Settings, credentials: JobCredentials) -> tuple[int, int]:
    """Preprocess and read the encrypted FASTQ.gz on two local workers: (reads, slices).

    The executor derives a job token per job from the submitter's token (``credentials``).
    """
    from xtremehub.connectors import CloudObject
    from xtremehub.connectors.genomics import FASTQGZip, partition_reads_batches

    with FunctionExecutor(workers=2, settings=settings, progress=False, credentials=credentials) as fexec:
        co = CloudObject.from_path(FASTQGZip, url, settings=settings).preprocess(fexec, force=True)
        slices = co.partition(partition_reads_batches, num_batches=4)
        stats = sum_stats(fexec.get_result(fexec.map(read_stats, slices)))
    return stats["reads"], len(slices)


def run_security_demo(settings: Settings) -> SecurityReport:
    """Set up, run and check everything in the module docstring."""
    from xtremehub.security.attest import measure
    from xtremehub.security.audit import AuditConfig, AuditLog
    from xtremehub.security.audit_verify import verify_log
    from xtremehub.security.issuer import EmbeddedIssuer, IssuerConfig, UserEntry, hash_secret
    from xtremehub.security.keypolicy import KeyPolicy
    from xtremehub.security.keyservice import KeyService
    from xtremehub.security.keyservice_client import _platform_code
    from xtremehub.security.keyservice_http import KeyServer
    from xtremehub.security.keyservice_store import MasterKey
    from xtremehub.security.login import request_token
    from xtremehub.security.oidc import OIDCConfig, OIDCValidator
    from xtremehub.security.pki import init_pki
    from xtremehub.streams import StreamManager

    t0 = time.perf_counter()
    report = SecurityReport()
    root = Path(settings.home).expanduser() / "security-demo"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    sample = ensure_sample_fastq(settings.home, size_mb=4)
    passwords = {"alice": os.urandom(12).hex(), "bob": os.urandom(12).hex()}
    users = {
        "alice": UserEntry("alice", hash_secret(passwords["alice"], rounds=4), ("research",)),
        "bob": UserEntry("bob", hash_secret(passwords["bob"], rounds=4)),
    }
    audit = AuditLog(AuditConfig(location=str(root / "audit.jsonl"), signing_key=root / "audit.key"))

    def key_audit(record: dict[str, Any]) -> None:  # the key service's records, into the chained log
        audit.append(
            str(record.get("event", "key")),
            subject=str(record.get("subject") or record.get("by") or "-"),
            action="release",
            resource=f"key:{record.get('dataset', '-')}",
            decision=str(record.get("outcome", "")),
            purpose=record.get("purpose"),
            reason=record.get("reason"),
        )

    with EmbeddedIssuer(IssuerConfig(audience="xtremehub", users=users)) as issuer:
        report.issuer = issuer.url

        def token(user: str) -> str:
            form = {"grant_type": "password", "username": user, "password": passwords[user]}
            answer = request_token(f"{issuer.url}/token", form, client_id="xhub", client_secret=None)
            return str(answer["access_token"])

        pki = init_pki(root / "tls", hosts=["127.0.0.1"])
        validator = OIDCValidator(OIDCConfig(issuer=issuer.url, audience="xtremehub"))
        master = MasterKey.generate(root / "master.key")
        service = KeyService(root / "keys", master, validator=validator, audit=key_audit)
        service.create_dataset(
            KeyPolicy(
                DATASET,
                roles=frozenset({"research"}),
                purposes=frozenset({"research"}),
                measurements=frozenset({measure(_platform_code)}),
            )
        )
        with KeyServer(service, cert_file=pki.server_cert, key_file=pki.server_key) as server:
            source = f"keyservice://127.0.0.1:{server.port}?ca={pki.ca_cert}"
            report.key_service = f"https://127.0.0.1:{server.port}"
            secure = Settings(home=settings.home, encryption=EncryptionSettings(keys=source, dataset=DATASET))
            url = f"enc+file://{root / 'data' / 'reads.fastq.gz'}"
            report.object_url = url
            alice_job = service.issue_job_token(
                token("alice"), job_id="demo-alice", datasets=[DATASET], purpose="research"
            )
            with _job_token(alice_job):
                storage.put(url, Path(sample.url).read_bytes(), settings=secure)
                alice = JobCredentials(token("alice"), service, (DATASET,), "research")
                report.alice_reads, report.slices = _read_encrypted(url, secure, alice)
            with gzip.open(sample.url, "rb") as fh:
                report.plain_reads = sum(1 for _ in fh) // 4
            try:
                bob_job = service.issue_job_token(
                    token("bob"), job_id="demo-bob", datasets=[DATASET], purpose="research"
                )
                with _job_token(bob_job):
                    _read_encrypted(url, secure, JobCredentials(token("bob"), service, (DATASET,), "research"))
            except SecurityError as exc:
                report.bob_refusal = f"{type(exc).__name__}: {exc}"

            streams_dir = root / "streams"
            marker = b"patient-0042 vital signs"
            with _job_token(alice_job):
                encryption = EncryptionSettings(keys=source, dataset=DATASET)
                with StreamManager.embedded(streams_dir, lts_flush_delay=0.0, encryption=encryption) as manager:
                    manager.create_scope("icu")
                    manager.create_stream("icu", "vitals")
                    with manager.create_writer("icu", "vitals") as writer:
                        for i in range(50):
                            writer.write_event(marker + b" #%d" % i, routing_key=f"bed-{i % 5}")
                    reader = manager.create_reader_group("check", "icu", ["vitals"]).create_reader("r")
                    while (event := reader.read_next(timeout=1.0)) is not None:
                        report.stream_events += event.data.startswith(marker)
                    reader.reader_offline()
    audit.close()
    stored = b"".join(p.read_bytes() for p in streams_dir.rglob("*") if p.is_file())
    stored_data = b"".join(p.read_bytes() for p in (root / "data").rglob("*") if p.is_file())
    verified = verify_log(str(root / "audit.jsonl"), public_key=audit.public_key, raise_on_error=False)
    report.audit_records, report.audit_problems = verified.records, [str(p) for p in verified.problems]
    first_read = gzip.decompress(Path(sample.url).read_bytes())[:200].split(b"\n")[1]
    report.checks = {
        "alice's workers read every read of the encrypted object": report.alice_reads == report.plain_reads > 0,
        "bob's job was refused its key": "research" in report.bob_refusal or "role" in report.bob_refusal,
        "no plaintext in the stored object or its index": first_read not in stored_data,
        "encrypted stream: every event read back, none in clear on disk": report.stream_events == 50
        and marker not in stored,
        "audit log verifies": verified.ok and report.audit_records > 0,
    }
    report.seconds = time.perf_counter() - t0
    return report
