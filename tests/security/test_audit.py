"""The audit log: chain and checkpoints verify; every edit, removal, reordering and forgery is named."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from xtremehub.errors import AuditLogTampered, ConfigError
from xtremehub.security.audit import AuditConfig, AuditLog, read_lines, record_hash
from xtremehub.security.audit_signing import CheckpointSigner, canonical, load_public_key
from xtremehub.security.audit_verify import verify_log

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "audit.key"


def write_log(path: Path, key: Path, n: int = 10, every: int = 4) -> AuditLog:
    """A closed log of ``n`` decisions with a checkpoint after every ``every`` records (and at close)."""
    with AuditLog(AuditConfig(location=str(path), signing_key=key, checkpoint_every=every)) as log:
        for i in range(n):
            log.append(
                "decision", subject=f"user{i}", action="read", resource=f"dataset:d{i}", decision="allow", policy="p"
            )
    return log


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def rehash(line: str, **changes: object) -> str:
    rec = json.loads(line)
    rec.update(changes)
    rec["hash"] = record_hash(rec)
    return canonical(rec).decode() + "\n"


def seq_line(path: Path, seq: int) -> int:
    """The 0-based line index of the record with ``seq``."""
    return next(i for i, line in enumerate(lines(path)) if json.loads(line)["seq"] == seq)


@pytest.fixture
def log_file(tmp_path: Path, key: Path) -> tuple[Path, AuditLog]:
    path = tmp_path / "audit.log"
    return path, write_log(path, key)


def test_intact_log_verifies(log_file: tuple[Path, AuditLog]) -> None:
    path, log = log_file
    report = verify_log(str(path), public_key=log.public_key)
    # 10 decisions, checkpoints after seq 3 and 8 (every 4 records), one at close
    assert (report.records, report.checkpoints, report.uncovered) == (13, 3, 0)
    recs = [json.loads(line) for _, line in read_lines(str(path))]
    assert [r["seq"] for r in recs] == list(range(13))
    assert [r["kind"] for r in recs].count("checkpoint") == 3
    for a, b in itertools.pairwise(recs):
        assert b["prev"] == a["hash"]
    fields = {"seq", "time", "kind", "subject", "action", "resource", "decision", "policy", "prev", "hash"}
    assert fields <= set(recs[0])


def test_edited_record_is_named(log_file: tuple[Path, AuditLog]) -> None:
    path, log = log_file
    text = lines(path)
    i = seq_line(path, 5)
    text[i] = text[i].replace('"decision":"allow"', '"decision":"deny"')
    path.write_text("".join(text))
    with pytest.raises(AuditLogTampered, match=rf"line {i + 1} \(seq 5\): record edited"):
        verify_log(str(path), public_key=log.public_key)


def test_edit_with_a_recomputed_hash_breaks_the_link(log_file: tuple[Path, AuditLog]) -> None:
    path, log = log_file
    text = lines(path)
    text[2] = rehash(text[2], subject="mallory")
    path.write_text("".join(text))
    with pytest.raises(AuditLogTampered, match=r"line 4 \(seq 3\): its prev hash is not the hash of seq 2"):
        verify_log(str(path), public_key=log.public_key)


def test_whole_chain_recomputed_is_caught_by_the_checkpoint(log_file: tuple[Path, AuditLog]) -> None:
    path, log = log_file
    text = lines(path)
    text[1] = rehash(text[1], decision="deny")
    prev = json.loads(text[1])["hash"]
    for i in range(2, len(text)):  # the forger re-links every later record (but cannot re-sign)
        text[i] = rehash(text[i], prev=prev)
        prev = json.loads(text[i])["hash"]
    path.write_text("".join(text))
    report = verify_log(str(path), public_key=log.public_key, raise_on_error=False)
    assert not report.ok
    assert "line 5 (seq 4): checkpoint does not sign the records before it" in report.problems[0]


def test_deleted_record_is_named(log_file: tuple[Path, AuditLog]) -> None:
    path, log = log_file
    text = lines(path)
    del text[seq_line(path, 6)]
    path.write_text("".join(text))
    with pytest.raises(AuditLogTampered, match=r"line 7 \(seq 7\): seq 6 missing before it: record\(s\) deleted"):
        verify_log(str(path), public_key=log.public_key)


def test_reordered_records_are_named(log_file: tuple[Path, AuditLog]) -> None:
    path, log = log_file
    text = lines(path)
    text[1], text[2] = text[2], text[1]
    path.write_text("".join(text))
    report = verify_log(str(path), public_key=log.public_key, raise_on_error=False)
    assert report.problems[0].startswith("line 2 (seq 2): seq 1 missing before it")
    assert report.problems[1].startswith("line 3 (seq 1): out of order after seq 2: record moved (reordered)")


def test_inserted_record_is_named(log_file: tuple[Path, AuditLog]) -> None:
    path, log = log_file
    text = lines(path)
    forged = rehash(text[2], subject="mallory", prev=json.loads(text[1])["hash"])
    text.insert(2, forged)
    path.write_text("".join(text))
    with pytest.raises(AuditLogTampered, match=r"line 4 \(seq 2\): seq 2 already at line 3: record inserted"):
        verify_log(str(path), public_key=log.public_key)


def test_truncated_tail_is_caught_by_the_checkpoint_count(tmp_path: Path, key: Path) -> None:
    path = tmp_path / "audit.log"
    log = write_log(path, key, n=10, every=4)
    text = lines(path)
    path.write_text("".join(text[:6]))  # seqs 6.. cut off: past the checkpoint over 8 records
    pattern = r"log truncated: checkpoint .* covers 8 records .* but the log ends at seq 5: seqs 6\.\.8 removed"
    with pytest.raises(AuditLogTampered, match=pattern):
        verify_log(str(path), public_key=log.public_key)
    report = verify_log(str(path), public_key=log.public_key, raise_on_error=False)
    assert "seqs 6..12 removed" in report.problems[-1]  # the checkpoint written at close


def test_tail_after_the_last_checkpoint_is_reported_uncovered(tmp_path: Path, key: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(AuditConfig(location=str(path), signing_key=key, checkpoint_every=4))
    for i in range(6):
        log.append("decision", subject=f"u{i}", action="read", resource="dataset:d")
    # not closed yet: 4 records + checkpoint + 2 records; the last 2 are not covered
    report = verify_log(str(path), public_key=log.public_key)
    assert (report.records, report.covered, report.uncovered) == (7, 5, 2)
    log.close()
    assert verify_log(str(path), public_key=log.public_key).uncovered == 0


def test_torn_last_line_is_named_and_the_next_append_starts_clean(tmp_path: Path, key: Path) -> None:
    path = tmp_path / "audit.log"
    log = write_log(path, key, n=3)
    with path.open("ab") as fh:
        fh.write(b'{"seq": 5, "kin')  # a crash mid-write
    with pytest.raises(AuditLogTampered, match=r"line 5: incomplete last record"):
        verify_log(str(path), public_key=log.public_key)
    with AuditLog(AuditConfig(location=str(path), signing_key=key)) as again:
        rec = again.append("decision", subject="x", action="read", resource="dataset:d")
    assert rec["seq"] == 4  # continues after the last whole record
    report = verify_log(str(path), public_key=log.public_key, raise_on_error=False)
    assert report.problems == ("line 5: not an audit record (edited or inserted text)",)


def test_forged_checkpoint_signature(log_file: tuple[Path, AuditLog], tmp_path: Path) -> None:
    path, log = log_file
    text = lines(path)
    i = next(n for n, line in enumerate(text) if json.loads(line)["kind"] == "checkpoint")
    rec = json.loads(text[i])
    forger = CheckpointSigner(Ed25519PrivateKey.generate())
    rec["detail"] = forger.sign(count=rec["detail"]["count"], head=rec["detail"]["head"], time=rec["detail"]["time"])
    rec["detail"]["key"] = log.public_key and json.loads(text[i])["detail"]["key"]  # claims the real key id
    text[i] = rehash(canonical(rec).decode())
    for j in range(i + 1, len(text)):
        text[j] = rehash(text[j], prev=json.loads(text[j - 1])["hash"])
    path.write_text("".join(text))
    with pytest.raises(AuditLogTampered, match=rf"line {i + 1} \(seq {i}\): checkpoint over {i} records: .*forged"):
        verify_log(str(path), public_key=log.public_key)


def test_wrong_public_key_fails_and_no_key_checks_only_the_chain(log_file: tuple[Path, AuditLog]) -> None:
    path, _ = log_file
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(AuditLogTampered, match="signature does not verify"):
        verify_log(str(path), public_key=other)
    report = verify_log(str(path))
    assert report.ok
    assert report.checkpoints == 0


def test_sidecar_checkpoint_edited(log_file: tuple[Path, AuditLog]) -> None:
    path, log = log_file
    side = Path(str(path) + ".checkpoints")
    entries = [json.loads(line) for line in side.read_text().splitlines()]
    entries[0]["count"] = 2
    side.write_text("".join(canonical(e).decode() + "\n" for e in entries))
    with pytest.raises(AuditLogTampered, match=r"\.checkpoints line 1: checkpoint over 2 records: .*forged"):
        verify_log(str(path), public_key=log.public_key)


def test_concurrent_threads_and_processes_share_one_chain(tmp_path: Path, key: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(AuditConfig(location=str(path), signing_key=key, checkpoint_every=50))

    def worker(n: int) -> None:
        for i in range(100):
            log.append("decision", subject=f"t{n}", action="read", resource=f"dataset:{i}")

    script = (
        "import sys; from pathlib import Path\n"
        "from xtremehub.security.audit import AuditConfig, AuditLog\n"
        "log = AuditLog(AuditConfig(location=sys.argv[1], signing_key=Path(sys.argv[2]), checkpoint_every=50))\n"
        "for i in range(150): log.append('decision', subject='proc', action='read', resource=f'dataset:{i}')\n"
        "log.close()\n"
    )
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), str(key)], env=env) for _ in range(2)]
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    log.close()
    report = verify_log(str(path), public_key=load_public_key(Path(str(key) + ".pub")))
    recs = [json.loads(line) for _, line in read_lines(str(path))]
    decisions = [r for r in recs if r["kind"] == "decision"]
    assert len(decisions) == 4 * 100 + 2 * 150
    assert report.records == len(recs)
    assert report.checkpoints >= (len(recs) // 50)


def test_log_in_a_store_prefix(key: Path) -> None:
    url = "mem://audit-test/xhub/"
    with AuditLog(AuditConfig(location=url, signing_key=key, checkpoint_every=3)) as log:
        for i in range(5):
            log.append("decision", subject=f"u{i}", action="read", resource="dataset:d")
    with AuditLog(AuditConfig(location=url, signing_key=key, checkpoint_every=3)) as again:
        assert again.append("decision", subject="later", action="read", resource="dataset:d")["seq"] > 5
    report = verify_log(url, public_key=log.public_key)
    assert report.ok
    assert report.uncovered == 0
    from xtremehub import storage

    segments = sorted(info.key for info in storage.list(url + "segments/"))
    assert len(segments) >= 3
    storage.delete("mem://audit-test/" + segments[-1])
    with pytest.raises(AuditLogTampered, match="segments truncated"):
        verify_log(url, public_key=log.public_key)


def test_store_location_must_be_a_prefix(key: Path) -> None:
    with pytest.raises(ConfigError, match="ending in '/'"):
        AuditConfig(location="s3://bucket/audit.log", signing_key=key)


def test_secrets_are_refused_in_details(tmp_path: Path, key: Path) -> None:
    with AuditLog(AuditConfig(location=str(tmp_path / "a.log"), signing_key=key)) as log:
        with pytest.raises(ValueError, match="bytes are refused"):
            log.append("key-release", subject="a", action="read", resource="key:d", detail={"kek": b"\x00" * 32})
        with pytest.raises(ValueError, match=r"detail\.access_token: secret-looking"):
            log.append("decision", subject="a", action="read", resource="key:d", detail={"access_token": "x"})


def test_signing_key_file_is_private(tmp_path: Path, key: Path) -> None:
    write_log(tmp_path / "a.log", key, n=1)
    assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "a.log").stat().st_mode & 0o077 == 0
    assert (tmp_path / "a.log.checkpoints").stat().st_mode & 0o077 == 0
    key.write_text("not a key")
    with pytest.raises(ConfigError, match=r"audit\.key: not an unencrypted PEM private key") as info:
        AuditLog(AuditConfig(location=str(tmp_path / "b.log"), signing_key=key))
    assert "not a key" not in str(info.value)


def test_a_log_closed_without_records_signs_nothing(tmp_path: Path, key: Path) -> None:
    """Every reader of the catalog opens its log: only a writer adds a checkpoint on close."""
    write_log(tmp_path / "a.log", key, n=3)
    before = lines(tmp_path / "a.log")
    for _ in range(3):
        AuditLog(AuditConfig(location=str(tmp_path / "a.log"), signing_key=key)).close()
    assert lines(tmp_path / "a.log") == before
    log = AuditLog(AuditConfig(location=str(tmp_path / "a.log"), signing_key=key))
    log.append("decision", subject="a", action="read", resource="dataset:d", decision="allow")
    log.close()
    after = [json.loads(line) for line in lines(tmp_path / "a.log")]
    assert [r["kind"] for r in after[len(before) :]] == ["decision", "checkpoint"]
    assert verify_log(str(tmp_path / "a.log"), public_key=load_public_key(key.with_name(key.name + ".pub"))).ok


def _key_id_of(path: str) -> str:
    from xtremehub.security.audit_signing import key_id, load_or_create_signing_key

    return key_id(load_or_create_signing_key(Path(path)).public_key())


def test_processes_creating_the_signing_key_at_once_share_one(tmp_path: Path) -> None:
    """Every first open of a catalog in a home creates its key: racing processes agree on one."""
    import multiprocessing

    from xtremehub.security.audit_signing import key_id

    for trial in range(10):
        path = tmp_path / f"home{trial}" / "audit.key"
        with multiprocessing.get_context("fork").Pool(6) as pool:
            ids = pool.map(_key_id_of, [str(path)] * 6)
        assert len(set(ids)) == 1, ids
        assert key_id(load_public_key(path.with_name("audit.key.pub"))) == ids[0]
        assert path.stat().st_mode & 0o777 == 0o600
        assert sorted(p.name for p in path.parent.iterdir()) == ["audit.key", "audit.key.pub"]  # no temp files
