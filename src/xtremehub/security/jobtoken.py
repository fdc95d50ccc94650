"""Job tokens: short-lived tokens derived from a submitter's, bound to one job and its datasets.

A submitter's OIDC token is validated once, when the job is submitted; the key service then
mints a job token that names the submitter, their roles, the job id, the datasets the job
may ask keys for and the purpose, and expires at most ``ttl`` seconds later (never after the
submitter's own token). Workers carry only the job token: a stolen one is good for one job's
datasets for minutes, not for everything the user may read.

Format: ``xjt1.<base64url JSON claims>.<base64url HMAC-SHA256>``, keyed by a secret the key
service derives from its master key (only the key service mints and checks job tokens).

Example:
    >>> from xtremehub.security.identity import Identity
    >>> issuer = JobTokenIssuer(b"s" * 32, clock=lambda: 1000.0)
    >>> token = issuer.issue(Identity("alice", roles=frozenset({"research"})), "job-1", ["genomes"], "research")
    >>> grant = issuer.verify(token)
    >>> grant.job_id, grant.datasets, grant.identity.subject, grant.expires_at
    ('job-1', frozenset({'genomes'}), 'alice', 1900.0)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from xtremehub.errors import AuthenticationFailed, ConfigError
from xtremehub.security.identity import Identity
from xtremehub.security.keypolicy import check_dataset_name

__all__ = ["JobGrant", "JobTokenIssuer", "peek_expiry"]

_PREFIX = "xjt1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def peek_expiry(token: str) -> float | None:
    """The ``exp`` of a job token, read without checking it (None if unreadable).

    For workers, which cannot check the MAC: they drop cached keys once their job token expired.

    Example:
        >>> peek_expiry("xjt1." + _b64(b'{"exp": 12.5}') + ".mac"), peek_expiry("junk")
        (12.5, None)
    """
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _PREFIX:
        return None
    try:
        return float(json.loads(_unb64(parts[1]))["exp"])
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class JobGrant:
    """What a valid job token grants."""

    identity: Identity
    job_id: str
    datasets: frozenset[str]
    purpose: str | None
    expires_at: float
    token_id: str


class JobTokenIssuer:
    """Mints and verifies job tokens with an HMAC ``secret`` (at least 32 bytes).

    Args:
        secret: the MAC key (the key service derives it from its master key).
        ttl: lifetime in seconds (default 15 minutes).
        leeway: seconds of clock skew tolerated on expiry.
        clock: the time source (tests move it).
    """

    def __init__(
        self, secret: bytes, ttl: float = 900.0, leeway: float = 5.0, clock: Callable[[], float] = time.time
    ) -> None:
        if len(secret) < 32:
            raise ConfigError("job token secret must be at least 32 bytes")
        self._secret, self.ttl, self.leeway, self._clock = secret, ttl, leeway, clock

    def __repr__(self) -> str:
        return f"JobTokenIssuer(ttl={self.ttl})"

    def issue(self, submitter: Identity, job_id: str, datasets: Iterable[str], purpose: str | None) -> str:
        """A job token for ``submitter``'s job ``job_id``, valid for ``datasets`` and ``purpose``."""
        if not job_id or len(job_id) > 200:
            raise ConfigError("job id must be a non-empty string of at most 200 characters")
        now = self._clock()
        exp = now + self.ttl
        if submitter.expires_at is not None:
            exp = min(exp, submitter.expires_at)
        if exp <= now:
            raise AuthenticationFailed(f"the token of {submitter.subject!r} has expired: no job token derived")
        claims = {
            "sub": submitter.subject,
            "roles": sorted(submitter.roles),
            "groups": sorted(submitter.groups),
            "src_iss": submitter.issuer,
            "job": job_id,
            "datasets": sorted(check_dataset_name(d) for d in datasets),
            "purpose": purpose,
            "iat": now,
            "exp": exp,
            "jti": uuid.uuid4().hex,
        }
        body = _b64(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
        return f"{_PREFIX}.{body}.{_b64(self._mac(body))}"

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._secret, f"{_PREFIX}.{body}".encode(), hashlib.sha256).digest()

    def verify(self, token: str) -> JobGrant:
        """The grant of a valid token; :class:`AuthenticationFailed` (never echoing it) otherwise."""
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 3 or parts[0] != _PREFIX:
            raise AuthenticationFailed("job token is malformed")
        try:
            mac = _unb64(parts[2])
        except ValueError:
            raise AuthenticationFailed("job token is malformed") from None
        if not hmac.compare_digest(mac, self._mac(parts[1])):
            raise AuthenticationFailed("job token signature is invalid")
        try:
            claims = json.loads(_unb64(parts[1]))
            exp = float(claims["exp"])
            grant = JobGrant(
                identity=Identity(
                    subject=str(claims["sub"]),
                    roles=frozenset(claims["roles"]),
                    groups=frozenset(claims["groups"]),
                    issuer=str(claims["src_iss"]),
                    expires_at=exp,
                    job_id=str(claims["job"]),
                ),
                job_id=str(claims["job"]),
                datasets=frozenset(claims["datasets"]),
                purpose=claims["purpose"],
                expires_at=exp,
                token_id=str(claims["jti"]),
            )
        except (ValueError, KeyError, TypeError):
            raise AuthenticationFailed("job token claims are malformed") from None
        if self._clock() > exp + self.leeway:
            raise AuthenticationFailed(f"job token of job {grant.job_id!r} expired")
        return grant
