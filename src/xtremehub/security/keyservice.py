"""The key service: releases dataset KEKs to workers whose identity, purpose and code a policy allows.

The protocol (modelled on SCONE CAS sessions), one request per KEK version:

1. At submission, the submitter's token is validated (a :class:`~.identity.TokenValidator`) and
   exchanged for a *job token* (:mod:`.jobtoken`) bound to the job id, its datasets and purpose.
2. In the worker, :class:`~.keyservice_client.ServiceKeys` makes a :class:`ReleaseRequest`: the job
   token, the dataset (and KEK version), a fresh random nonce and a timestamp, an ephemeral
   X25519 public key and :class:`~.attest.Evidence` of the code measurement bound to all of these.
3. The service checks, and refuses with :class:`~xtremehub.errors.KeyReleaseDenied` (or
   :class:`~xtremehub.errors.AuthenticationFailed` for a bad job token) otherwise: the job token;
   that the dataset is one of the job's; freshness and that the nonce was never seen (a bounded
   replay cache with expiry); who and purpose (an :class:`~.authz.Authorizer` if given, else the
   dataset's :class:`~.keypolicy.KeyPolicy` lists); the evidence (an
   :class:`~.attest.EvidenceVerifier`) and that the measurement is allowed by the policy.
4. It answers with the KEK sealed to the ephemeral key (HPKE, :mod:`.sealing`), bound to the request.

Every release and denial goes to the ``audit`` sink as a record without secrets.

Example:
    >>> import tempfile
    >>> from xtremehub.security.attest import SoftwareAttester, measure
    >>> from xtremehub.security.identity import Identity
    >>> from xtremehub.security.keypolicy import KeyPolicy
    >>> from xtremehub.security.keyservice_client import ServiceKeys
    >>> from xtremehub.security.keyservice_store import MasterKey
    >>> def task(x: int) -> int:
    ...     return x
    >>> records = []
    >>> service = KeyService(tempfile.mkdtemp(), MasterKey(b"m" * 32), audit=records.append)
    >>> service.create_dataset(KeyPolicy("genomes", roles=frozenset({"research"}),
    ...     purposes=frozenset({"research"}), measurements=frozenset({measure(task)})))
    1
    >>> token = service.issue_job_token(identity=Identity("alice", roles=frozenset({"research"})),
    ...     job_id="job-1", datasets=["genomes"], purpose="research")
    >>> keys = ServiceKeys(service, token, SoftwareAttester(task))
    >>> keys.unwrap("genomes", keys.wrap("genomes", b"d" * 32)) == b"d" * 32
    True
    >>> [r["event"] for r in records]
    ['key.policy', 'job_token.issued', 'key.release']
"""

from __future__ import annotations

import base64
import collections
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xtremehub.errors import (
    AuthenticationFailed,
    ConfigError,
    Forbidden,
    KeyReleaseDenied,
    SecurityError,
    StalePolicy,
)
from xtremehub.security.attest import Evidence, EvidenceVerifier, SoftwareVerifier
from xtremehub.security.authz import AccessRequest, Action, Authorizer, Resource
from xtremehub.security.identity import Identity, TokenValidator
from xtremehub.security.jobtoken import JobGrant, JobTokenIssuer
from xtremehub.security.keypolicy import KeyPolicy, check_dataset_name
from xtremehub.security.keyservice_store import KeyStore, MasterKey
from xtremehub.security.sealing import seal

__all__ = [
    "AuditSink",
    "KeyService",
    "ReleaseRequest",
    "ReleaseResponse",
    "ReplayCache",
    "release_context",
    "report_data",
]

log = logging.getLogger(__name__)

#: Where audit records go: ``(record) -> None``; records never hold tokens, keys or nonces.
AuditSink = Callable[[dict[str, Any]], None]
_MIN_NONCE = 16


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: object, field: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError:
        raise KeyReleaseDenied(f"release request field {field!r} is not base64") from None


@dataclass(frozen=True, repr=False)
class ReleaseRequest:
    """A worker's request for one KEK version of a dataset (``version`` None: the current one)."""

    job_token: str
    dataset: str
    version: int | None
    nonce: bytes
    timestamp: float
    public_key: bytes
    evidence: Evidence

    def __repr__(self) -> str:
        return f"ReleaseRequest(dataset={self.dataset!r}, version={self.version})"  # no token

    def report_data(self) -> bytes:
        """The digest the evidence must be bound to: everything in the request but the evidence."""
        return report_data(self.job_token, self.dataset, self.version, self.nonce, self.timestamp, self.public_key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_token": self.job_token,
            "dataset": self.dataset,
            "version": self.version,
            "nonce": _b64(self.nonce),
            "timestamp": self.timestamp,
            "public_key": _b64(self.public_key),
            "evidence": self.evidence.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReleaseRequest:
        try:
            version = data["version"]
            if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
                raise KeyReleaseDenied("release request field 'version' must be an integer or null")
            evidence = data["evidence"]
            if not isinstance(evidence, Mapping):
                raise KeyReleaseDenied("release request field 'evidence' must be an object")
            return cls(
                job_token=str(data["job_token"]),
                dataset=str(data["dataset"]),
                version=version,
                nonce=_unb64(data["nonce"], "nonce"),
                timestamp=float(data["timestamp"]),
                public_key=_unb64(data["public_key"], "public_key"),
                evidence=Evidence.from_dict(evidence),
            )
        except KeyError as exc:
            raise KeyReleaseDenied(f"release request lacks the field {exc.args[0]!r}") from None
        except (TypeError, ValueError):
            raise KeyReleaseDenied("release request has a field of the wrong type") from None


def report_data(
    job_token: str, dataset: str, version: int | None, nonce: bytes, timestamp: float, public_key: bytes
) -> bytes:
    """SHA-256 over a release request's fields: what attestation evidence is bound to."""
    h = hashlib.sha256(b"xhub-release-v1")
    for part in (
        dataset.encode(),
        str(version).encode(),
        nonce,
        repr(float(timestamp)).encode(),
        public_key,
        hashlib.sha256(job_token.encode()).digest(),
    ):
        h.update(len(part).to_bytes(4, "big") + part)
    return h.digest()


def release_context(dataset: str, version: int | None, nonce: bytes) -> bytes:
    """The HPKE ``info`` binding a sealed KEK to the request it answers."""
    return b"xhub-kek-release-v1|" + dataset.encode() + b"|" + str(version).encode() + b"|" + nonce


@dataclass(frozen=True)
class ReleaseResponse:
    """The KEK sealed to the request's ephemeral key; ``sealed`` opens to ``version (4 bytes) || KEK``."""

    dataset: str
    version: int
    sealed: bytes

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "version": self.version, "sealed": _b64(self.sealed)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReleaseResponse:
        try:
            return cls(str(data["dataset"]), int(data["version"]), _unb64(data["sealed"], "sealed"))
        except (KeyError, TypeError, ValueError):
            raise KeyReleaseDenied("the key service's answer is malformed") from None


class ReplayCache:
    """Nonces seen in the last ``ttl`` seconds, at most ``capacity`` of them (thread-safe).

    Example:
        >>> cache = ReplayCache(capacity=2, ttl=10, clock=lambda: 0.0)
        >>> cache.add(b"a"), cache.add(b"a"), cache.add(b"b"), cache.add(b"c")
        (True, False, True, None)
    """

    def __init__(self, capacity: int = 100_000, ttl: float = 120.0, clock: Callable[[], float] = time.time) -> None:
        self.capacity, self.ttl, self._clock = capacity, ttl, clock
        self._seen: collections.OrderedDict[bytes, float] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, nonce: bytes) -> bool | None:
        """True: new (now remembered); False: replayed; None: the cache is full of live nonces."""
        now = self._clock()
        with self._lock:
            while self._seen:
                oldest, expiry = next(iter(self._seen.items()))
                if expiry > now:
                    break
                del self._seen[oldest]
            if nonce in self._seen:
                return False
            if len(self._seen) >= self.capacity:
                return None
            self._seen[nonce] = now + self.ttl
            return True


class KeyService:
    """The embedded key service (``xhub keys serve`` puts it behind HTTPS).

    Args:
        directory: where KEKs (sealed under ``master``) and key policies live.
        master: the master key (:meth:`MasterKey.from_env`).
        validator: validates submitters' tokens for :meth:`issue_job_token` (an OIDC validator).
        authorizer: decides who/purpose (``read`` on ``Resource("key", dataset)``) and policy
            changes (``admin``); without one, each dataset's key policy lists decide.
        verifier: checks attestation evidence (default: :class:`~.attest.SoftwareVerifier`).
        audit: receives one record per release, denial, job token and policy change.
        job_token_ttl: lifetime of job tokens in seconds.
        freshness: how far (seconds) a request's timestamp may be from the service's clock.
        replay_capacity: how many live nonces the replay cache holds.
        admin_roles: without an ``authorizer``, the roles that may change policies and rotate
            KEKs remotely (none by default: administration only in process, with the master key).
        clock: the time source (tests move it).
    """

    def __init__(
        self,
        directory: Path | str,
        master: MasterKey,
        *,
        validator: TokenValidator | None = None,
        authorizer: Authorizer | None = None,
        verifier: EvidenceVerifier | None = None,
        audit: AuditSink | None = None,
        job_token_ttl: float = 900.0,
        freshness: float = 60.0,
        replay_capacity: int = 100_000,
        admin_roles: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = KeyStore(directory, master)
        self.validator, self.authorizer = validator, authorizer
        self.verifier: EvidenceVerifier = verifier if verifier is not None else SoftwareVerifier()
        self._audit, self.freshness, self._clock = audit, freshness, clock
        self.jobs = JobTokenIssuer(master.derive("job-token"), ttl=job_token_ttl, clock=clock)
        self.replay = ReplayCache(replay_capacity, ttl=2 * freshness, clock=clock)
        self.admin_roles = frozenset(admin_roles)

    def __repr__(self) -> str:
        return f"KeyService({str(self.store.directory)!r})"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError(
            "the embedded KeyService does not travel to workers: serve it (xhub keys serve) and use its URL"
        )

    def _record(self, event: str, outcome: str, **fields: Any) -> None:
        record = {"event": event, "outcome": outcome, "at": self._clock(), **fields}
        if self._audit is not None:
            self._audit(record)
        log.debug("%s %s dataset=%s", event, outcome, fields.get("dataset"))

    def authenticate(self, bearer: str) -> Identity:
        """The identity of a submitter's or administrator's token (:class:`AuthenticationFailed` if none)."""
        if self.validator is None:
            raise AuthenticationFailed("this key service has no token validator configured")
        return self.validator.validate(bearer)

    def _admin(self, by: Identity | None, dataset: str, event: str) -> None:
        """``by`` None: an in-process caller holding the master key. Else the authorizer (``admin``
        on the key) or, without one, one of ``admin_roles`` decides."""
        if by is None:
            return
        try:
            if self.authorizer is not None:
                self.authorizer.check(AccessRequest(by, Action.ADMIN, Resource("key", dataset)))
            elif not by.roles & self.admin_roles:
                roles = ", ".join(sorted(self.admin_roles)) or "none configured"
                raise Forbidden(f"{by.subject!r} may not administer the key of {dataset!r} (admin roles: {roles})")
        except Forbidden as exc:
            self._record(event, "deny", dataset=dataset, by=by.subject, reason=str(exc))
            raise

    # --- administration -----------------------------------------------------------------

    def create_dataset(self, policy: KeyPolicy, by: Identity | None = None) -> int:
        """A first KEK for ``policy.dataset`` (if it has none) and its first key policy; the KEK version."""
        self.put_policy(policy, by=by)
        return self.store.ensure([policy.dataset])[policy.dataset]

    def policy(self, dataset: str) -> KeyPolicy | None:
        return self.store.policy(dataset)

    def put_policy(self, policy: KeyPolicy, by: Identity | None = None) -> None:
        """Install the next version of a dataset's key policy; :class:`StalePolicy` if not based on the current."""
        self._admin(by, policy.dataset, "key.policy")
        who = by.subject if by is not None else None
        try:
            self.store.put_policy(policy)
        except StalePolicy as exc:
            self._record("key.policy", "deny", dataset=policy.dataset, version=policy.version, by=who, reason=str(exc))
            raise
        self._record(
            "key.policy", "allow", dataset=policy.dataset, version=policy.version, digest=policy.digest(), by=who
        )

    def rotate(self, dataset: str, by: Identity | None = None) -> int:
        """A new KEK version for ``dataset``; old versions stay available for unwrapping. The new version."""
        self._admin(by, dataset, "key.rotate")
        if self.store.current_version(dataset) is None:
            raise ConfigError(f"dataset {dataset!r} has no KEK to rotate")
        version = self.store.rotate(dataset)
        self._record("key.rotate", "allow", dataset=dataset, version=version, by=by.subject if by else None)
        return version

    # --- job tokens ---------------------------------------------------------------------

    def issue_job_token(
        self,
        bearer: str | None = None,
        *,
        identity: Identity | None = None,
        job_id: str,
        datasets: Iterable[str],
        purpose: str | None,
    ) -> str:
        """A job token for ``job_id`` derived from the submitter's token ``bearer`` (validated by
        ``validator``) or, in process, from an already validated ``identity``."""
        datasets = sorted(datasets)
        if identity is None:
            if bearer is None:
                raise AuthenticationFailed("no token: a job token is derived from the submitter's token")
            try:
                identity = self.authenticate(bearer)
            except AuthenticationFailed as exc:
                self._record("job_token.issued", "deny", job=job_id, datasets=datasets, reason=str(exc))
                raise
        token = self.jobs.issue(identity, job_id, datasets, purpose)
        self._record(
            "job_token.issued", "allow", subject=identity.subject, job=job_id, datasets=datasets, purpose=purpose
        )
        return token

    # --- release ------------------------------------------------------------------------

    def release(self, request: ReleaseRequest) -> ReleaseResponse:
        """The requested KEK sealed to the request's ephemeral key, or a typed refusal (see module doc)."""
        fields: dict[str, Any] = {"dataset": request.dataset, "version": request.version}
        try:
            grant = self.jobs.verify(request.job_token)
            fields.update(subject=grant.identity.subject, job=grant.job_id, purpose=grant.purpose)
            response, measurement = self._release(request, grant)
        except SecurityError as exc:
            self._record("key.release", "deny", reason=str(exc), **fields)
            raise
        fields.update(version=response.version, measurement=measurement)
        self._record("key.release", "allow", **fields)
        return response

    def _release(self, request: ReleaseRequest, grant: JobGrant) -> tuple[ReleaseResponse, str]:
        dataset = request.dataset
        try:
            check_dataset_name(dataset)
        except ConfigError as exc:
            raise KeyReleaseDenied(str(exc)) from None
        if dataset not in grant.datasets:
            raise KeyReleaseDenied(f"job {grant.job_id!r} was not granted dataset {dataset!r}")
        if len(request.nonce) < _MIN_NONCE:
            raise KeyReleaseDenied(f"the nonce must be at least {_MIN_NONCE} random bytes")
        if abs(self._clock() - request.timestamp) > self.freshness:
            raise KeyReleaseDenied(f"the request is not fresh (timestamp more than {self.freshness:g} s off)")
        fresh = self.replay.add(request.nonce)
        if fresh is False:
            raise KeyReleaseDenied(f"nonce replayed: a release request for {dataset!r} was already answered")
        if fresh is None:
            raise KeyReleaseDenied("the key service's replay cache is full: retry later")
        policy = self.store.policy(dataset)
        if policy is None:
            raise KeyReleaseDenied(f"dataset {dataset!r} has no key policy")
        self._check_who(policy, grant)
        measurement = self.verifier.verify(request.evidence, request.report_data())
        if measurement not in policy.measurements:
            raise KeyReleaseDenied(
                f"code measurement {measurement[:23]}... is not allowed by the key policy of {dataset!r} "
                f"(version {policy.version})"
            )
        version = request.version if request.version is not None else self.store.current_version(dataset)
        try:
            if version is None:
                raise LookupError(dataset)
            kek = self.store.kek(dataset, version)
        except LookupError:
            raise KeyReleaseDenied(f"dataset {dataset!r} has no KEK version {request.version or ''}".rstrip()) from None
        sealed = seal(
            version.to_bytes(4, "big") + kek,
            request.public_key,
            release_context(dataset, request.version, request.nonce),
        )
        return ReleaseResponse(dataset, version, sealed), measurement

    def _check_who(self, policy: KeyPolicy, grant: JobGrant) -> None:
        dataset, identity = policy.dataset, grant.identity
        if self.authorizer is not None:
            resource = Resource("key", dataset, attributes={"job": grant.job_id})
            try:
                self.authorizer.check(AccessRequest(identity, Action.READ, resource, purpose=grant.purpose))
            except Forbidden as exc:
                raise KeyReleaseDenied(f"key of {dataset!r}: {exc}") from None
            return
        if not policy.admits(identity.subject, identity.roles):
            raise KeyReleaseDenied(
                f"{identity.subject!r} is neither a subject nor in a role of the key policy of {dataset!r}"
            )
        if grant.purpose not in policy.purposes:
            raise KeyReleaseDenied(f"purpose {grant.purpose!r} is not allowed by the key policy of {dataset!r}")
