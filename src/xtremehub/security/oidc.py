"""Validate OIDC access tokens (JWT) from any OpenID Provider.

:class:`OIDCValidator` implements :class:`~xtremehub.security.identity.TokenValidator`: it
fetches the provider's discovery document and JWKS once, caches the keys, refreshes them once
(rate-limited) when a token names an unknown ``kid``, and checks the signature with an
algorithm pinned in the configuration (RS256/ES256/EdDSA by default: ``none`` and HMAC are
refused, so a token "signed" with the provider's public key as an HMAC secret never passes),
then ``iss``, ``aud``/``azp``, ``exp``, ``nbf`` and ``iat`` with a small leeway. Keycloak's
role claims (``realm_access.roles``, ``resource_access.<client>.roles``) and ``groups`` become
XtremeHub roles through a :class:`RoleMapping`.

Every failure is an :class:`~xtremehub.errors.AuthenticationFailed` naming the check that
failed; the token itself never appears in a message or a log line.

Example:
    >>> config = OIDCConfig(issuer="https://idp.example/realms/health", audience="xtremehub")
    >>> config.algorithms
    ('RS256', 'ES256', 'EdDSA')
    >>> OIDCConfig(issuer="https://idp.example", audience="x", algorithms=("HS256",))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xtremehub.errors.ConfigError: OIDC algorithms: 'HS256' is not an asymmetric signature algorithm (allowed: ...)
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from jwt import PyJWK

from xtremehub.errors import AuthenticationFailed, ConfigError
from xtremehub.security._net import is_loopback_host
from xtremehub.security.identity import Identity

__all__ = ["ASYMMETRIC_ALGORITHMS", "JWKSCache", "OIDCConfig", "OIDCValidator", "RoleMapping", "fetch_json"]

log = logging.getLogger(__name__)

#: Signature algorithms a provider may be pinned to: public-key ones only (never ``none`` or HS*).
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: Longest JOSE header segment accepted (characters).
_MAX_HEADER = 4096
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
#: Largest discovery document or JWKS accepted (bytes).
_MAX_DOCUMENT = 1 << 20


@dataclass(frozen=True)
class RoleMapping:
    """How a provider's role and group claims become XtremeHub roles.

    Sources are named ``realm:<role>`` (``realm_access.roles``), ``client:<client>:<role>``
    (``resource_access.<client>.roles``), ``group:<group>`` (``groups``) and ``role:<role>``
    (a flat ``roles`` claim). ``mapping`` sends a source to XtremeHub roles; with
    ``passthrough`` a realm role, a role of one of ``clients`` or a flat role with no mapping
    is kept under its own name (groups are only ever mapped).

    Example:
        >>> m = RoleMapping(mapping={"realm:pravega_lungs": ("lungs-reader",), "group:/surgery": ("video",)})
        >>> sorted(m.roles({"realm_access": {"roles": ["pravega_lungs", "offline_access"]}, "groups": ["/surgery"]}))
        ['lungs-reader', 'offline_access', 'video']
    """

    mapping: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Clients whose ``resource_access`` roles count (empty: the configured audience only).
    clients: tuple[str, ...] = ()
    passthrough: bool = True

    def sources(self, claims: Mapping[str, Any], default_client: str | None = None) -> list[str]:
        """Every role source the claims hold, as ``kind:name``."""
        found: list[str] = []
        realm = claims.get("realm_access")
        if isinstance(realm, Mapping):
            found += [f"realm:{r}" for r in _strings(realm.get("roles"))]
        access = claims.get("resource_access")
        if isinstance(access, Mapping):
            for client, entry in access.items():
                if isinstance(entry, Mapping):
                    found += [f"client:{client}:{r}" for r in _strings(entry.get("roles"))]
        found += [f"role:{r}" for r in _strings(claims.get("roles"))]
        found += [f"group:{g}" for g in _strings(claims.get("groups"))]
        return found

    def roles(self, claims: Mapping[str, Any], default_client: str | None = None) -> frozenset[str]:
        """The XtremeHub roles of a token's claims."""
        clients = set(self.clients or ((default_client,) if default_client else ()))
        roles: set[str] = set()
        for source in self.sources(claims):
            mapped = self.mapping.get(source)
            if mapped is not None:
                roles.update(mapped)
                continue
            if not self.passthrough:
                continue
            kind, _, rest = source.partition(":")
            if kind in ("realm", "role"):
                roles.add(rest)
            elif kind == "client":
                client, _, role = rest.rpartition(":")
                if client in clients:
                    roles.add(role)
        return frozenset(roles)


@dataclass(frozen=True)
class OIDCConfig:
    """One trusted OpenID Provider.

    Attributes:
        issuer: the provider's issuer URL, exactly as in its tokens' ``iss`` (Keycloak:
            ``https://host/realms/<realm>``).
        audience: the ``aud`` (or, with ``accept_azp``, the ``azp``) tokens must carry.
        algorithms: signature algorithms accepted (asymmetric only).
        leeway: seconds of clock skew allowed on ``exp``, ``nbf`` and ``iat``.
        roles: how role and group claims map to XtremeHub roles.
        jwks_uri: the key set's URL; None: read from the discovery document.
        accept_azp: accept a token whose ``aud`` lacks ``audience`` when its ``azp`` is it
            (Keycloak access tokens carry ``aud: account`` and the client in ``azp``).
        jwks_max_age: seconds a fetched key set is used before it is fetched again.
        jwks_min_refresh: at least this many seconds between two fetches caused by unknown ``kid``s.
        http_timeout: seconds for one request to the provider.
        ca_file: CA bundle for an HTTPS provider with a private CA (None: the system's).
        allow_http: accept an ``http://`` issuer that is not on loopback (never in production).
        cache_size: how many validated tokens are remembered (keyed by their SHA-256), so that
            a client reconnecting with the same token costs a lookup, not a signature check;
            an entry is used for at most ``cache_ttl`` seconds and never past the token's ``exp``.
    """

    issuer: str
    audience: str | None
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    leeway: float = 30.0
    roles: RoleMapping = field(default_factory=RoleMapping)
    jwks_uri: str | None = None
    accept_azp: bool = True
    jwks_max_age: float = 3600.0
    jwks_min_refresh: float = 10.0
    http_timeout: float = 5.0
    ca_file: str | None = None
    allow_http: bool = False
    #: Validated tokens remembered (by SHA-256) for at most ``cache_ttl`` seconds; 0: none.
    cache_size: int = 1024
    cache_ttl: float = 60.0

    def __post_init__(self) -> None:
        for alg in self.algorithms:
            if alg not in ASYMMETRIC_ALGORITHMS:
                allowed = ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
                raise ConfigError(
                    f"OIDC algorithms: {alg!r} is not an asymmetric signature algorithm (allowed: {allowed})"
                )
        if not self.algorithms:
            raise ConfigError("OIDC algorithms: at least one is needed")
        if not 0 <= self.leeway <= 300:
            raise ConfigError(f"OIDC leeway: {self.leeway} s is not between 0 and 300")
        for name in ("issuer", "jwks_uri"):
            url = getattr(self, name)
            if url is not None and not (self.allow_http or _https_or_loopback(url)):
                raise ConfigError(f"OIDC {name}: {url!r} must be https:// (plain http only on loopback)")

    @property
    def discovery_url(self) -> str:
        """The provider's discovery document."""
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


def fetch_json(url: str, *, timeout: float, ca_file: str | None = None) -> dict[str, Any]:
    """GET ``url`` and parse its JSON object; :class:`AuthenticationFailed` naming the URL when that fails."""
    context = ssl.create_default_context(cafile=ca_file) if url.startswith("https://") else None
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            body = response.read(_MAX_DOCUMENT + 1)
    except OSError as exc:
        raise AuthenticationFailed(f"identity provider unreachable: GET {url} failed: {exc}") from None
    if len(body) > _MAX_DOCUMENT:
        raise AuthenticationFailed(f"identity provider: {url} answered more than {_MAX_DOCUMENT} bytes")
    try:
        document = json.loads(body)
    except ValueError:
        raise AuthenticationFailed(f"identity provider: {url} did not answer JSON") from None
    if not isinstance(document, dict):
        raise AuthenticationFailed(f"identity provider: {url} did not answer a JSON object")
    return document


class JWKSCache:
    """A provider's signing keys by ``kid``: fetched once, refreshed when old or on an unknown ``kid``.

    Requests to the provider happen at most once per ``min_refresh`` seconds, whatever causes
    them: a flood of tokens with made-up ``kid``s costs the provider one request, not one each,
    and while the provider is down each validation fails (or uses the keys fetched before, when
    the set only got old) at once instead of waiting for a timeout. ``fetches`` counts the
    key-set requests made (for tests and monitoring).
    """

    def __init__(
        self,
        config: OIDCConfig,
        *,
        fetch: Callable[[str], dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._fetch = fetch or (lambda url: fetch_json(url, timeout=config.http_timeout, ca_file=config.ca_file))
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str | None, dict[str, Any]] = {}
        self._parsed: dict[tuple[str | None, str], PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._last_error = ""
        self._jwks_uri = config.jwks_uri
        self.fetches = 0

    def key(self, kid: str | None, alg: str) -> PyJWK:
        """The public key for ``kid`` usable with ``alg``; one rate-limited refresh when ``kid`` is unknown."""
        cached = self._parsed.get((kid, alg))
        if cached is not None and not self._stale():
            return cached
        with self._lock:
            if self._stale():
                self._try_refresh(required=self._fetched_at is None)
            elif self._lookup(kid) is None:
                self._try_refresh(required=False)
            jwk_dict = self._lookup(kid)
            if jwk_dict is None:
                raise AuthenticationFailed(
                    f"unknown signing key id {kid!r:.60}: not in the key set of {self._config.issuer}"
                )
            return self._parse(kid, alg, jwk_dict)

    def _try_refresh(self, *, required: bool) -> None:
        """Fetch the key set unless one was asked for less than ``min_refresh`` ago.

        ``required`` (no keys yet): a failure is raised; otherwise the keys fetched before stay.
        """
        now = self._clock()
        if self._attempted_at is not None and now - self._attempted_at < self._config.jwks_min_refresh:
            if required:
                raise AuthenticationFailed(f"identity provider {self._config.issuer} unavailable: {self._last_error}")
            return
        self._attempted_at = now
        try:
            self._refresh()
        except AuthenticationFailed as exc:
            self._last_error = str(exc)
            if required:
                raise
            log.warning("OIDC %s: keeping the key set fetched before: %s", self._config.issuer, exc)

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at > self._config.jwks_max_age

    def _lookup(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _parse(self, kid: str | None, alg: str, jwk_dict: dict[str, Any]) -> PyJWK:
        declared = jwk_dict.get("alg")
        if declared is not None and declared != alg:
            raise AuthenticationFailed(f"algorithm mismatch: the token says {alg}, its signing key is for {declared}")
        if jwk_dict.get("use", "sig") != "sig":
            raise AuthenticationFailed(f"signing key {kid!r:.60} is not a signature key")
        try:
            parsed = PyJWK(jwk_dict, algorithm=alg)
        except jwt.exceptions.PyJWTError as exc:
            raise AuthenticationFailed(f"signing key {kid!r:.60} does not fit algorithm {alg}: {exc}") from None
        self._parsed[(kid, alg)] = parsed
        return parsed

    def _refresh(self) -> None:
        if self._jwks_uri is None:
            discovery = self._fetch(self._config.discovery_url)
            if discovery.get("issuer") != self._config.issuer:
                raise AuthenticationFailed(
                    f"identity provider: discovery document names issuer {discovery.get('issuer')!r:.200}, "
                    f"expected {self._config.issuer!r}"
                )
            uri = discovery.get("jwks_uri")
            if not isinstance(uri, str) or not (self._config.allow_http or _https_or_loopback(uri)):
                raise AuthenticationFailed(f"identity provider: bad jwks_uri {uri!r:.200} in the discovery document")
            self._jwks_uri = uri
        self.fetches += 1
        jwks = self._fetch(self._jwks_uri)
        keys = jwks.get("keys")
        if not isinstance(keys, list):
            raise AuthenticationFailed(f"identity provider: {self._jwks_uri} holds no 'keys' array")
        self._keys = {k.get("kid"): k for k in keys if isinstance(k, dict)}
        self._parsed = {}
        self._fetched_at = self._clock()
        log.debug("OIDC %s: %d signing keys", self._config.issuer, len(self._keys))


class OIDCValidator:
    """Turns a provider's access token into an :class:`Identity` (a :class:`TokenValidator`).

    Example (see ``tests/security`` for running providers)::

        validator = OIDCValidator(OIDCConfig(issuer="https://idp/realms/health", audience="xtremehub"))
        identity = validator.validate(token)   # AuthenticationFailed naming the failed check
    """

    def __init__(
        self, config: OIDCConfig, *, jwks: JWKSCache | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.jwks = jwks or JWKSCache(config)
        self._clock = clock
        self._allowed = frozenset(config.algorithms)
        self._cache: OrderedDict[bytes, tuple[float, Identity]] = OrderedDict()
        self._cache_lock = threading.Lock()

    def validate(self, token: str) -> Identity:
        """Check ``token``'s signature and claims; its identity, or :class:`AuthenticationFailed`."""
        if not isinstance(token, str) or not token:
            raise AuthenticationFailed("no token")
        if self.config.cache_size <= 0:
            return self._validate(token)
        digest = hashlib.sha256(token.encode()).digest()
        now = self._clock()
        with self._cache_lock:
            hit = self._cache.get(digest)
        if hit is not None:
            until, identity = hit
            if now < until and (identity.expires_at is None or now < identity.expires_at + self.config.leeway):
                return identity
        identity = self._validate(token)
        until = now + self.config.cache_ttl
        with self._cache_lock:
            self._cache[digest] = (until, identity)
            self._cache.move_to_end(digest)
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
        return identity

    def _validate(self, token: str) -> Identity:
        header = _header(token)
        alg = header.get("alg")
        if alg not in self._allowed:
            raise AuthenticationFailed(
                f"algorithm {alg!r:.20} refused for {self.config.issuer} (pinned: {', '.join(self.config.algorithms)})"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthenticationFailed("malformed token: kid is not a string")
        key = self.jwks.key(kid, alg)
        claims = self._decode(token, key, alg)
        self._check_audience(claims)
        return self._identity(claims)

    def _decode(self, token: str, key: PyJWK, alg: str) -> dict[str, Any]:
        now = self._clock()
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=self.config.issuer,
                leeway=self.config.leeway,
                options={
                    "require": ["exp", "iat", "iss", "sub"],
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.exceptions.InvalidSignatureError:
            raise AuthenticationFailed("signature check failed") from None
        except jwt.exceptions.MissingRequiredClaimError as exc:
            raise AuthenticationFailed(f"token lacks the {exc.claim!r} claim") from None
        except jwt.exceptions.InvalidIssuerError:
            raise AuthenticationFailed(f"wrong issuer: expected {self.config.issuer}") from None
        except jwt.exceptions.PyJWTError as exc:
            raise AuthenticationFailed(f"malformed token: {type(exc).__name__}") from None
        leeway = self.config.leeway
        for name in ("exp", "nbf", "iat"):
            if name in claims and (isinstance(claims[name], bool) or not isinstance(claims[name], int | float)):
                raise AuthenticationFailed(f"malformed token: {name} is not a number")
        if claims["exp"] <= now - leeway:
            raise AuthenticationFailed(f"token expired at {_utc(claims['exp'])} (leeway {leeway:g} s)")
        if "nbf" in claims and claims["nbf"] > now + leeway:
            raise AuthenticationFailed(f"token not valid before {_utc(claims['nbf'])} (leeway {leeway:g} s)")
        if claims["iat"] > now + leeway:
            raise AuthenticationFailed(f"token issued in the future, at {_utc(claims['iat'])} (leeway {leeway:g} s)")
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise AuthenticationFailed("malformed token: sub is not a non-empty string")
        kind = claims.get("token_use") or claims.get("typ")
        if isinstance(kind, str) and kind.lower() in _NOT_ACCESS_TOKENS:
            raise AuthenticationFailed(f"not an access token ({kind} token)")
        return claims

    def _check_audience(self, claims: Mapping[str, Any]) -> None:
        wanted = self.config.audience
        if wanted is None:
            return
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else _strings(aud)
        if wanted in audiences:
            return
        if self.config.accept_azp and claims.get("azp") == wanted and claims.get("iss") not in audiences:
            return  # Keycloak's access tokens: aud "account", the client in azp (never a token for the IdP itself)
        raise AuthenticationFailed(f"wrong audience: the token is not for {wanted!r}")

    def _identity(self, claims: dict[str, Any]) -> Identity:
        client = claims.get("azp") or claims.get("client_id")
        roles = self.config.roles.roles(claims, default_client=self.config.audience)
        job = claims.get("job_id")
        return Identity(
            subject=claims["sub"],
            roles=roles,
            groups=frozenset(_strings(claims.get("groups"))),
            issuer=claims["iss"],
            client=client if isinstance(client, str) else None,
            expires_at=float(claims["exp"]),
            job_id=job if isinstance(job, str) else None,
            claims=claims,
        )


#: ``token_use``/``typ`` claims of tokens that are not access tokens (refresh, ID, Keycloak offline).
_NOT_ACCESS_TOKENS = frozenset({"refresh", "id", "offline", "logout"})


def _header(token: str) -> dict[str, Any]:
    """The JOSE header, only to pick the key and pin the algorithm (``jwt.decode`` checks it all again).

    PyJWT's ``get_unverified_header`` checks the whole token's alphabet in Python, which costs
    as much as the signature check; the header segment alone is enough here.
    """
    segment, dot, _ = token.partition(".")
    if not dot or len(segment) > _MAX_HEADER or not _BASE64URL.fullmatch(segment):
        raise AuthenticationFailed("malformed token: not a JWS compact serialisation")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except ValueError:
        raise AuthenticationFailed("malformed token: the header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise AuthenticationFailed("malformed token: the header is not a JSON object")
    return header


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list | tuple) else []


def _utc(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _https_or_loopback(url: str) -> bool:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https":
        return True
    return parsed.scheme == "http" and bool(parsed.hostname) and is_loopback_host(parsed.hostname or "")
