"""Verifying an audit log: every edited, removed, reordered or inserted record, named.

:func:`verify_log` re-reads a log and checks, record by record:

- the record parses and its ``hash`` is the hash of its content (else: *edited*);
- its ``seq`` is the next one (a gap: records *deleted*; a seq seen again or going back:
  *reordered* or *inserted*);
- its ``prev`` is the hash of the record before it (a record removed, inserted or replaced
  with a re-computed hash shows here);
- every checkpoint record is signed by the trusted public key and its signed ``head`` is the
  hash of the record before it (a chain re-computed after an edit shows here);
- every checkpoint in the side file ``<log>.checkpoints`` is signed and its ``count`` records
  are still in the log with the signed head: records cut off the end of the log are caught
  this way, back to the last checkpoint. Records after the last checkpoint can be cut off
  unnoticed; the report says how many records are not yet covered by a checkpoint.

Example:
    >>> import tempfile, pathlib
    >>> from xtremehub.security.audit import AuditConfig, AuditLog
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with AuditLog(AuditConfig(location=str(d / "a.log"), signing_key=d / "k")) as log:
    ...     for who in ("alice", "bob"):
    ...         _ = log.append("decision", subject=who, action="read", resource="dataset:lungs")
    >>> text = (d / "a.log").read_text().replace("bob", "eve")
    >>> _ = (d / "a.log").write_text(text)
    >>> verify_log(str(d / "a.log"), public_key=log.public_key)
    Traceback (most recent call last):
    ...
    xtremehub.errors.AuditLogTampered: .../a.log: line 2 (seq 1): record edited: its hash does not match its content
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from xtremehub.config import Settings
from xtremehub.errors import AuditLogTampered
from xtremehub.security.audit import GENESIS, is_store_location, read_lines, record_hash, sidecar_location
from xtremehub.security.audit_signing import check_checkpoint

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["VerifyReport", "verify_log"]


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify_log` found.

    Attributes:
        location: the log.
        records: records read (checkpoints included).
        checkpoints: checkpoint records whose signature was checked (0 without a public key).
        covered: records covered by the last valid checkpoint.
        problems: every problem, first one first (empty when the log is intact).
    """

    location: str
    records: int
    checkpoints: int
    covered: int
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def uncovered(self) -> int:
        """Records after the last checkpoint: these could be cut off without notice."""
        return self.records - self.covered


def verify_log(
    location: str,
    *,
    public_key: Ed25519PublicKey | None = None,
    settings: Settings | None = None,
    raise_on_error: bool = True,
) -> VerifyReport:
    """Verify the chain and checkpoints of the log at ``location`` (file or storage prefix).

    Args:
        public_key: the trusted key of the log's writer. Without it only the hash chain is
            checked (anyone can re-compute a chain; only signatures pin it).
        raise_on_error: raise on the first problem (else return them in the report).

    Raises:
        AuditLogTampered: naming the line and seq of the first bad record.
    """
    problems: list[str] = []
    hashes: list[str | None] = []  # by position: the hash of the record at index i
    by_seq: dict[int, tuple[str, object]] = {}  # seq -> (hash, checkpoint signature), first seen
    where_of_seq: dict[int, str] = {}
    expected, prev = 0, GENESIS
    n_checkpoints, covered = 0, 0
    for where, raw in read_lines(location, settings=settings):
        index = len(hashes)
        if not raw.endswith(b"\n"):
            problems.append(f"{where}: incomplete last record (a torn write or a truncated file)")
            hashes.append(None)
            continue
        try:
            rec = json.loads(raw)
            seq = rec["seq"]
            if not isinstance(rec, dict) or not isinstance(seq, int):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            problems.append(f"{where}: not an audit record (edited or inserted text)")
            hashes.append(None)
            continue
        name = f"{where} (seq {seq})"
        if rec.get("hash") != record_hash(rec):
            problems.append(f"{name}: record edited: its hash does not match its content")
        if seq in where_of_seq:
            problems.append(f"{name}: seq {seq} already at {where_of_seq[seq]}: record inserted or duplicated")
        elif seq > expected:
            missing = f"seq {expected}" if seq == expected + 1 else f"seqs {expected}..{seq - 1}"
            problems.append(f"{name}: {missing} missing before it: record(s) deleted or moved")
        elif seq < expected:
            problems.append(f"{name}: out of order after seq {expected - 1}: record moved (reordered)")
        elif rec.get("prev") != prev:
            before = f"seq {seq - 1}" if seq else "the start"
            problems.append(f"{name}: its prev hash is not the hash of {before}: a record before it was replaced")
        where_of_seq.setdefault(seq, where)
        if rec.get("kind") == "checkpoint":
            detail = rec.get("detail")
            body: Mapping[str, object] = detail if isinstance(detail, Mapping) else {}
            if body.get("count") != seq or body.get("head") != rec.get("prev"):
                problems.append(f"{name}: checkpoint does not sign the records before it (count/head differ)")
            elif public_key is not None:
                try:
                    check_checkpoint(body, public_key)
                    n_checkpoints += 1
                    if not problems:
                        covered = index + 1
                except AuditLogTampered as exc:
                    problems.append(f"{name}: {exc}")
        hashes.append(str(rec.get("hash")))
        detail = rec.get("detail")
        sig = detail.get("sig") if rec.get("kind") == "checkpoint" and isinstance(detail, Mapping) else None
        by_seq.setdefault(seq, (str(rec.get("hash")), sig))
        prev = str(rec.get("hash"))
        expected = max(expected, seq + 1)
    if public_key is not None:
        problems.extend(_check_sidecar(location, by_seq, public_key, settings))
    report = VerifyReport(location, len(hashes), n_checkpoints, covered, tuple(problems))
    if problems and raise_on_error:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise AuditLogTampered(f"{location}: {problems[0]}{more}")
    return report


def _check_sidecar(
    location: str, by_seq: Mapping[int, tuple[str, object]], public_key: Ed25519PublicKey, settings: Settings | None
) -> list[str]:
    side = sidecar_location(location)
    problems: list[str] = []
    label = "segments" if is_store_location(location) else "log"
    size = max(by_seq, default=-1) + 1
    lines = _store_side(side, settings) if is_store_location(location) else list(read_lines(side))
    for where, raw in lines:
        try:
            body = json.loads(raw)
            count = body["count"]
            if not isinstance(count, int):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            problems.append(f"{side} {where}: not a checkpoint")
            continue
        try:
            check_checkpoint(body, public_key)
        except AuditLogTampered as exc:
            problems.append(f"{side} {where}: {exc}")
            continue
        if count not in by_seq:
            problems.append(
                f"{label} truncated: checkpoint at {side} {where} (signed {body.get('time')}) covers "
                f"{count} records and is record seq {count}, but the {label} ends at seq {size - 1}: "
                f"seqs {size}..{count} removed"
                if count >= size
                else f"checkpoint record seq {count} (signed at {side} {where}) is missing from the {label}"
            )
        elif count and by_seq.get(count - 1, ("", None))[0] != body.get("head"):
            problems.append(
                f"checkpoint at {side} {where} signed the head of seq {count - 1}, which no longer matches: "
                "records up to it were edited, removed or reordered"
            )
        elif by_seq[count][1] != body.get("sig"):
            problems.append(f"checkpoint at {side} {where} differs from the checkpoint record seq {count} in the log")
    return problems


def _store_side(side: str, settings: Settings | None) -> list[tuple[str, bytes]]:
    from xtremehub import storage
    from xtremehub.errors import ObjectNotFound

    try:
        data = storage.get(side, settings=settings)
    except ObjectNotFound:
        return []
    return [(f"line {n}", line) for n, line in enumerate(data.splitlines(keepends=True), 1)]
