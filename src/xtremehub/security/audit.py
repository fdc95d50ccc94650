"""The audit log: append-only, hash-chained JSON lines with periodic Ed25519-signed checkpoints.

Every authorisation decision, policy change and key release is one record::

    {"seq": 7, "time": "2026-12-06T15:40:00.123456Z", "kind": "decision", "subject": "alice",
     "roles": ["research"], "action": "read", "resource": "stream:lungs/ct", "purpose": "research",
     "decision": "allow", "policy": "research-read", "reason": "...", "detail": {},
     "prev": "<hash of record 6>", "hash": "<SHA-256 of this record without 'hash'>"}

Every ``checkpoint_every`` records (and every ``checkpoint_interval`` seconds, and on close) a
``checkpoint`` record signs the count of records before it and the hash of the last one; the
same signed body is appended to a side file ``<log>.checkpoints`` so that cutting records off
the end of the log is caught too (see :func:`~xtremehub.security.audit_verify.verify_log`).

Records hold the identity's subject and roles, never its token or claims; ``detail`` refuses
bytes and secret-looking field names, so a key cannot slip in by mistake.

A log is a local file (appends from threads and processes are serialised by an ``flock`` on
it) or a storage URL prefix ending in ``/`` (``s3://audit/xhub/``): there records are buffered
and each checkpoint uploads one immutable segment object ``segments/<first seq>.jsonl``; one
writer per prefix, and records since the last checkpoint are lost if the process dies.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> log = AuditLog(AuditConfig(location=str(d / "audit.log"), signing_key=d / "audit.key"))
    >>> log.append("decision", subject="alice", action="read", resource="stream:lungs/ct", decision="allow")["seq"]
    0
    >>> log.close()  # writes a final checkpoint
    >>> from xtremehub.security.audit_verify import verify_log
    >>> verify_log(str(d / "audit.log"), public_key=log.public_key).records
    2
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.errors import ConfigError, Forbidden, ObjectNotFound
from xtremehub.security.audit_signing import CheckpointSigner, canonical, load_or_create_signing_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from xtremehub.security.audit_verify import VerifyReport
    from xtremehub.security.authz import AccessRequest, Authorizer, Decision
    from xtremehub.security.residual import Condition

__all__ = [
    "GENESIS",
    "AuditConfig",
    "AuditLog",
    "Audited",
    "is_store_location",
    "read_lines",
    "record_hash",
    "sidecar_location",
]

log = logging.getLogger(__name__)

#: The ``prev`` of the first record.
GENESIS = "0" * 64
_SECRET_NAMES = ("token", "secret", "password", "private", "credential", "passphrase", "key_material")


def record_hash(record: Mapping[str, object]) -> str:
    """SHA-256 (hex) of a record's canonical JSON without its ``hash`` field.

    Example:
        >>> r = {"seq": 0, "prev": GENESIS, "kind": "x"}
        >>> record_hash(r) == record_hash(dict(r, hash="anything"))
        True
    """
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def is_store_location(location: str) -> bool:
    """Whether ``location`` is a storage URL prefix (segment objects) rather than a local file."""
    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme != "file"


def sidecar_location(location: str) -> str:
    """Where the signed checkpoints of a log are kept apart from it."""
    return location + "checkpoints.jsonl" if is_store_location(location) else location + ".checkpoints"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _check_detail(value: object, path: str) -> None:
    if isinstance(value, bytes | bytearray | memoryview):
        raise ValueError(f"audit detail {path}: bytes are refused (keys and secrets never go to the audit log)")
    if isinstance(value, Mapping):
        for k, v in value.items():
            if any(word in str(k).lower() for word in _SECRET_NAMES):
                raise ValueError(f"audit detail {path}.{k}: secret-looking fields are refused")
            _check_detail(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_detail(v, f"{path}[{i}]")


@dataclass(frozen=True)
class AuditConfig:
    """Where the audit log goes and how often it is checkpointed.

    Attributes:
        location: a local file path, or a storage URL prefix ending in ``/`` (S3, memory, ...).
        signing_key: Ed25519 private key (PEM) signing checkpoints; created with mode 0600 and a
            ``.pub`` next to it if missing. Keep it away from the log's own directory in
            production: whoever holds it can re-sign an edited log.
        checkpoint_every: a checkpoint after every this many records (also the segment size of
            a storage-URL log).
        checkpoint_interval: and at least every this many seconds while records arrive.
        fsync: ``fsync`` the file after every append (durable, slower).
        settings: storage settings for a storage-URL ``location``.
    """

    location: str
    signing_key: Path
    checkpoint_every: int = 1000
    checkpoint_interval: float = 60.0
    fsync: bool = False
    settings: Settings | None = None

    def __post_init__(self) -> None:
        if self.checkpoint_every < 1:
            raise ConfigError(f"audit checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if is_store_location(self.location) and not self.location.endswith("/"):
            raise ConfigError(f"audit location {self.location}: a storage URL must be a prefix ending in '/'")


class _FileSink:
    """Appends lines to a local file under an exclusive ``flock`` (threads and processes)."""

    def __init__(self, path: str, fsync: bool) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self._fh: IO[bytes] = os.fdopen(fd, "r+b", buffering=0)
        side_fd = os.open(sidecar_location(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._side: IO[bytes] = os.fdopen(side_fd, "ab", buffering=0)
        self._lock = threading.Lock()
        self._known: tuple[int, int, str] | None = None  # (file size, last seq, last hash)

    @contextlib.contextmanager
    def locked(self) -> Iterator[tuple[int, str]]:
        """Hold the log exclusively; yields ``(next seq, prev hash)``."""
        with self._lock:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
            try:
                yield self._tail()
            finally:
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)

    def _tail(self) -> tuple[int, str]:
        size = os.fstat(self._fh.fileno()).st_size
        if self._known is not None and self._known[0] == size:
            return self._known[1] + 1, self._known[2]
        if size == 0:
            return 0, GENESIS
        block = min(size, 1 << 16)
        while True:
            self._fh.seek(size - block)
            data = self._fh.read(block)
            if not data.endswith(b"\n"):  # a torn last write: end it so the next record starts clean
                self._fh.write(b"\n")
                size += 1
                data += b"\n"
            for line in reversed(data.splitlines()[1:] if block < size else data.splitlines()):
                try:
                    rec = json.loads(line)
                    seq, digest = int(rec["seq"]), str(rec["hash"])
                except (ValueError, KeyError, TypeError):
                    log.warning("audit log %s: skipping an unreadable line at its end", self.path)
                    continue
                self._known = (size, seq, digest)
                return seq + 1, digest
            if block >= size:
                return 0, GENESIS
            block = min(size, block * 4)

    def write(self, lines: Sequence[bytes], last: tuple[int, str], checkpoints: Sequence[bytes]) -> None:
        data = b"".join(lines)
        self._fh.write(data)
        if checkpoints:
            self._side.write(b"".join(checkpoints))
        if self._fsync:
            os.fsync(self._fh.fileno())
            if checkpoints:
                os.fsync(self._side.fileno())
        size = os.fstat(self._fh.fileno()).st_size
        self._known = (size, *last)

    def close(self) -> None:
        self._fh.close()
        self._side.close()


class _StoreSink:
    """Buffers lines; each checkpoint uploads them as one segment object (single writer)."""

    def __init__(self, prefix: str, settings: Settings | None) -> None:
        self.prefix = prefix
        self._settings = settings
        self._lock = threading.Lock()
        self._pending: list[bytes] = []
        self._first_pending = 0
        self._sidecar = b""
        self._next, self._prev = 0, GENESIS
        try:  # only the last segment is read: it ends with the last record
            segments = sorted(storage.list(prefix + "segments/", settings=settings), key=lambda i: i.key)
        except ObjectNotFound:
            segments = []
        last = storage.get(segments[-1].url, settings=settings) if segments else b""
        for line in reversed(last.splitlines()):
            try:
                rec = json.loads(line)
                self._next, self._prev = int(rec["seq"]) + 1, str(rec["hash"])
                break
            except (ValueError, KeyError, TypeError):
                continue
        self._first_pending = self._next
        with contextlib.suppress(ObjectNotFound):
            self._sidecar = storage.get(sidecar_location(prefix), settings=settings)

    @contextlib.contextmanager
    def locked(self) -> Iterator[tuple[int, str]]:
        with self._lock:
            yield self._next, self._prev

    def write(self, lines: Sequence[bytes], last: tuple[int, str], checkpoints: Sequence[bytes]) -> None:
        if not self._pending:
            self._first_pending = self._next
        self._pending.extend(lines)
        self._next, self._prev = last[0] + 1, last[1]
        if checkpoints:
            url = f"{self.prefix}segments/{self._first_pending:012d}.jsonl"
            storage.put(url, b"".join(self._pending), settings=self._settings)
            self._pending.clear()
            self._sidecar += b"".join(checkpoints)
            storage.put(sidecar_location(self.prefix), self._sidecar, settings=self._settings)

    def close(self) -> None:
        if self._pending:
            log.warning("audit log %s: %d records were not checkpointed", self.prefix, len(self._pending))


def read_lines(location: str, *, settings: Settings | None = None) -> Iterator[tuple[str, bytes]]:
    """The raw lines of a log as ``(where, line)``, ``where`` naming the file or segment and line number.

    A missing log has no lines; a last line without its newline is returned as is.
    """
    if is_store_location(location):
        try:
            infos = sorted(storage.list(location + "segments/", settings=settings), key=lambda i: i.key)
        except ObjectNotFound:
            return
        for info in infos:
            data = storage.get(info.url, settings=settings)
            name = info.key.rsplit("/", 1)[-1]
            for n, line in enumerate(data.splitlines(keepends=True), 1):
                yield f"segment {name} line {n}", line
        return
    try:
        fh = open(location, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with fh:
        for n, line in enumerate(fh, 1):
            yield f"line {n}", line


class AuditLog:
    """An append-only, hash-chained, checkpointed audit log.

    Args:
        config: where it goes and how often it is checkpointed.

    Thread-safe; several processes may append to the same local file.
    """

    def __init__(self, config: AuditConfig) -> None:
        self.config = config
        self._signer = CheckpointSigner(load_or_create_signing_key(config.signing_key))
        self._sink: _FileSink | _StoreSink = (
            _StoreSink(config.location, config.settings)
            if is_store_location(config.location)
            else _FileSink(config.location, config.fsync)
        )
        self._last_checkpoint = time.monotonic()
        self._checkpoint_hash = ""  # hash of the last checkpoint record this log wrote
        self._appended = False  # whether this instance appended a record (else close signs nothing)
        self._closed = False

    def __repr__(self) -> str:
        return f"AuditLog({self.config.location!r}, key={self._signer.key_id})"

    @property
    def location(self) -> str:
        return self.config.location

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The key that verifies this log's checkpoints."""
        return self._signer.public_key

    def append(
        self,
        kind: str,
        *,
        subject: str,
        action: str,
        resource: str,
        decision: str | None = None,
        policy: str | None = None,
        roles: Sequence[str] = (),
        purpose: str | None = None,
        reason: str | None = None,
        detail: Mapping[str, object] | None = None,
    ) -> dict[str, object]:
        """Append one record and return it (with its ``seq`` and ``hash``).

        ``detail`` holds extra JSON values (policy hashes, a dataset, a job id); bytes and
        fields named like secrets are refused with ``ValueError``.
        """
        if self._closed:
            raise ValueError(f"audit log {self.location} is closed")
        detail = dict(detail or {})
        _check_detail(detail, "detail")
        body: dict[str, object] = {
            "kind": kind,
            "subject": subject,
            "roles": sorted(roles),
            "action": action,
            "resource": resource,
            "purpose": purpose,
            "decision": decision,
            "policy": policy,
            "reason": reason,
            "detail": detail,
        }
        with self._sink.locked() as (seq, prev):
            record, line = self._seal(body, seq, prev)
            lines = [line]
            last = (seq, str(record["hash"]))
            checkpoints: list[bytes] = []
            due = (seq + 1) % self.config.checkpoint_every == 0 or (
                time.monotonic() - self._last_checkpoint >= self.config.checkpoint_interval
            )
            if due:
                line, side, last = self._checkpoint_lines(seq + 1, last[1])
                lines.append(line)
                checkpoints.append(side)
            self._sink.write(lines, last, checkpoints)
            self._appended = True
        return record

    def record_decision(
        self,
        request: AccessRequest,
        decision: Decision,
        *,
        kind: str = "decision",
        detail: Mapping[str, object] | None = None,
    ) -> dict[str, object]:
        """Append an authorisation decision: subject, roles, action, resource, purpose, verdict, policy.

        The key service records a key release with ``kind="key-release"`` and a ``detail`` such
        as ``{"measurement": "<sha256>", "kek_version": 3}`` (never the key itself).
        """
        extra: dict[str, object] = dict(detail or {})
        if request.identity.job_id is not None:
            extra.setdefault("job", request.identity.job_id)
        return self.append(
            kind,
            subject=request.identity.subject,
            roles=sorted(request.identity.roles),
            action=request.action.value,
            resource=f"{request.resource.kind}:{request.resource.name}",
            purpose=request.purpose,
            decision="allow" if decision.allowed else "deny",
            policy=decision.policy_id,
            reason=decision.reason,
            detail=extra,
        )

    def checkpoint(self) -> dict[str, object]:
        """Sign the log as it is now (count and head); returns the checkpoint record."""
        with self._sink.locked() as (seq, prev):
            line, side, last = self._checkpoint_lines(seq, prev)
            self._sink.write([line], last, [side])
        result: dict[str, object] = json.loads(line)
        return result

    def verify(self) -> VerifyReport:
        """:func:`~xtremehub.security.audit_verify.verify_log` of this log with its own public key."""
        from xtremehub.security.audit_verify import verify_log

        return verify_log(self.location, public_key=self.public_key, settings=self.config.settings)

    def close(self) -> None:
        """Write a final checkpoint (when this log appended records) and close the files (idempotent).

        A log opened and closed without a record (a catalog only read) signs nothing.
        """
        if self._closed:
            return
        with self._sink.locked() as (seq, prev):
            # else nothing of ours to cover, or the last record is our checkpoint already
            if self._appended and prev != self._checkpoint_hash:
                line, side, last = self._checkpoint_lines(seq, prev)
                self._sink.write([line], last, [side])
        self._closed = True
        self._sink.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _seal(body: Mapping[str, object], seq: int, prev: str) -> tuple[dict[str, object], bytes]:
        """The record with its hash, and its line: the hashed canonical JSON with ``hash`` appended."""
        record: dict[str, object] = {"seq": seq, "time": _now(), **body, "prev": prev}
        hashed = canonical(record)
        record["hash"] = digest = hashlib.sha256(hashed).hexdigest()
        return record, hashed[:-1] + b',"hash":"' + digest.encode() + b'"}\n'

    def _checkpoint_lines(self, seq: int, prev: str) -> tuple[bytes, bytes, tuple[int, str]]:
        signed = self._signer.sign(count=seq, head=prev, time=_now())
        record, line = self._seal(
            {
                "kind": "checkpoint",
                "subject": "audit",
                "roles": [],
                "action": "checkpoint",
                "resource": f"audit:{self.location}",
                "purpose": None,
                "decision": None,
                "policy": None,
                "reason": None,
                "detail": signed,
            },
            seq,
            prev,
        )
        self._last_checkpoint = time.monotonic()
        self._checkpoint_hash = str(record["hash"])
        return line, canonical(signed) + b"\n", (seq, self._checkpoint_hash)


class Audited:
    """An :class:`~xtremehub.security.authz.Authorizer` that records every decision of another.

    Example:
        >>> import tempfile, pathlib
        >>> from xtremehub.security.authz import AccessRequest, Action, Resource
        >>> from xtremehub.security.identity import Identity
        >>> class Nobody:
        ...     def decide(self, request):
        ...         from xtremehub.security.authz import Decision
        ...         return Decision(False, "nobody may", policy_id="none")
        ...     def check(self, request):
        ...         return self.decide(request)
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> log = AuditLog(AuditConfig(location=str(d / "a.log"), signing_key=d / "k"))
        >>> authz = Audited(Nobody(), log)
        >>> authz.decide(AccessRequest(Identity("bob"), Action.READ, Resource("dataset", "lungs"))).allowed
        False
        >>> log.close()
        >>> next(read_lines(log.location))[1].count(b'"decision":"deny"')
        1
    """

    def __init__(self, authorizer: Authorizer, log: AuditLog) -> None:
        self.authorizer = authorizer
        self.log = log

    def decide(self, request: AccessRequest) -> Decision:
        """The inner decision, recorded."""
        decision = self.authorizer.decide(request)
        digest = getattr(self.authorizer, "policy_digest", None)
        self.log.record_decision(request, decision, detail={"policy_set": digest} if digest else None)
        return decision

    def decide_batch(self, requests: Sequence[AccessRequest]) -> list[Decision]:
        """The inner decisions of ``requests`` (in one batch when it offers one), each recorded as
        :meth:`decide` records it, in order."""
        from xtremehub.security.authz import decide_each

        decisions = decide_each(self.authorizer, requests)
        digest = getattr(self.authorizer, "policy_digest", None)
        for request, decision in zip(requests, decisions, strict=True):
            self.log.record_decision(request, decision, detail={"policy_set": digest} if digest else None)
        return decisions

    def check(self, request: AccessRequest) -> Decision:
        """Like :meth:`decide`, raising :class:`~xtremehub.errors.Forbidden` on a denial."""
        decision = self.decide(request)
        if not decision.allowed:
            raise forbidden(request, decision)
        return decision

    def reload(self, *, force: bool = False) -> bool:
        """Re-read the inner authorizer's policies (see ``CedarAuthorizer.reload``; its policy
        changes are audited there); False when it cannot reload."""
        from xtremehub.security.authz import ReloadableAuthorizer

        if not isinstance(self.authorizer, ReloadableAuthorizer):
            return False
        return self.authorizer.reload(force=force)

    def readable(self, request: AccessRequest) -> Condition:
        """The inner authorizer's listing condition (see ``CedarAuthorizer.readable``); not a decision,
        so not recorded: every resource finally shown is decided (and recorded) one by one."""
        from xtremehub.security.residual import Untranslatable

        inner = getattr(self.authorizer, "readable", None)
        if inner is None:
            raise Untranslatable(f"{type(self.authorizer).__name__} has no listing condition")
        cond: Condition = inner(request)
        return cond


def forbidden(request: AccessRequest, decision: Decision) -> Forbidden:
    """The :class:`~xtremehub.errors.Forbidden` for a denial: who, what, which policy, why (no secrets).

    Example:
        >>> from xtremehub.security.authz import AccessRequest, Action, Decision, Resource
        >>> from xtremehub.security.identity import Identity
        >>> req = AccessRequest(Identity("bob"), Action.READ, Resource("stream", "lungs/ct"), purpose="ads")
        >>> str(forbidden(req, Decision(False, "purpose must be research", policy_id="purpose-research")))
        "bob may not read stream 'lungs/ct' for purpose 'ads': purpose must be research [policy purpose-research]"
    """
    purpose = f" for purpose {request.purpose!r}" if request.purpose else ""
    policy = f" [policy {decision.policy_id}]" if decision.policy_id else ""
    return Forbidden(
        f"{request.identity.subject} may not {request.action.value} {request.resource.kind} "
        f"{request.resource.name!r}{purpose}: {decision.reason}{policy}"
    )
