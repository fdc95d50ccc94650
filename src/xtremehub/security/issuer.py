"""An embedded OpenID issuer for local use and tests (``xhub auth serve``).

It serves the three things a relying party needs -- the discovery document, the JWKS and a
token endpoint with the ``client_credentials``, ``password`` and ``refresh_token`` grants --
from users, clients and roles in a TOML file. Tokens are ES256 JWTs shaped like Keycloak's
(``realm_access.roles``, ``groups``, ``azp``) so the same :class:`~.oidc.OIDCValidator` reads
them. Signing keys rotate with overlap: a retired key stays in the JWKS until the last token it
signed has expired.

A users file::

    [issuer]
    audience = "xtremehub"
    token_lifetime = 300        # seconds
    key_rotation = 86400        # seconds between signing-key rotations

    [users.alice]
    password_hash = "$2b$12$..."   # bcrypt: xhub auth hash-password
    roles = ["research"]
    groups = ["/lungs"]

    [clients.ingest]
    secret_hash = "$2b$12$..."
    roles = ["writer"]

Example:
    >>> config = IssuerConfig.from_toml_text('[issuer]\\naudience = "xhub"\\n[users.bob]\\nroles = ["r"]\\n')
    >>> config.users["bob"].roles
    ('r',)
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import threading
import time
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import bcrypt
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from xtremehub.errors import AuthenticationFailed, ConfigError

__all__ = ["ClientEntry", "EmbeddedIssuer", "IssuerConfig", "SigningKeys", "UserEntry", "hash_secret"]

log = logging.getLogger(__name__)
#: How often the server thread checks for :meth:`stop` (socketserver's default, 0.5 s, made every
#: stop wait that long).
_STOP_POLL = 0.05


def hash_secret(secret: str, *, rounds: int = 12) -> str:
    """A bcrypt hash of a password or client secret, for the users file.

    Example:
        >>> h = hash_secret("s3cret", rounds=4)
        >>> h.startswith("$2b$04$")
        True
    """
    return bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds)).decode()


@dataclass(frozen=True)
class UserEntry:
    """A user of the embedded issuer (password grant)."""

    name: str
    password_hash: str | None = None
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClientEntry:
    """A client: ``secret_hash`` None is a public client (password grant only)."""

    name: str
    secret_hash: str | None = None
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class IssuerConfig:
    """The issuer's settings, users and clients (see the module docstring for the TOML form)."""

    audience: str = "xtremehub"
    token_lifetime: float = 300.0
    refresh_lifetime: float = 8 * 3600.0
    key_rotation: float = 86400.0
    users: Mapping[str, UserEntry] = field(default_factory=dict)
    clients: Mapping[str, ClientEntry] = field(default_factory=dict)
    #: The ``iss`` of tokens; None: ``http://host:port`` of the running server.
    url: str | None = None

    @classmethod
    def from_toml(cls, path: str | Path) -> IssuerConfig:
        """Read a users file; :class:`ConfigError` naming the file and field on bad input."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the issuer's users file: {exc.strerror}") from None
        return cls.from_toml_text(text, source=str(path))

    @classmethod
    def from_toml_text(cls, text: str, *, source: str = "<text>") -> IssuerConfig:
        """Parse the TOML form."""
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not TOML: {exc}") from None
        section = raw.get("issuer", {})
        kwargs: dict[str, Any] = {}
        for name, kind in (("audience", str), ("url", str)):
            if name in section:
                kwargs[name] = _typed(section[name], kind, f"{source}: issuer.{name}")
        for name in ("token_lifetime", "refresh_lifetime", "key_rotation"):
            if name in section:
                value = _typed(section[name], (int, float), f"{source}: issuer.{name}")
                if value <= 0:
                    raise ConfigError(f"{source}: issuer.{name} must be > 0, got {value}")
                kwargs[name] = float(value)
        users = {}
        for name, entry in _table(raw, "users", source).items():
            where = f"{source}: users.{name}"
            users[name] = UserEntry(
                name,
                _optional_str(entry, "password_hash", where),
                _str_list(entry, "roles", where),
                _str_list(entry, "groups", where),
            )
        clients = {}
        for name, entry in _table(raw, "clients", source).items():
            where = f"{source}: clients.{name}"
            clients[name] = ClientEntry(
                name, _optional_str(entry, "secret_hash", where), _str_list(entry, "roles", where)
            )
        return cls(users=users, clients=clients, **kwargs)


class SigningKeys:
    """ES256 signing keys with rotation and overlap.

    The newest key signs; a key retired by :meth:`rotate` stays published in :meth:`jwks`
    for ``overlap`` seconds (the longest lifetime of a token it signed), then disappears.
    """

    def __init__(self, overlap: float, *, clock: Any = time.time) -> None:
        self._overlap = overlap
        self._clock = clock
        self._lock = threading.Lock()
        #: kid -> (private key, retired at or None)
        self._keys: dict[str, tuple[ec.EllipticCurvePrivateKey, float | None]] = {}
        self.current = ""
        self.created_at = 0.0
        self.rotate()

    def rotate(self) -> str:
        """Make a new signing key current; the old one is published until its tokens expire."""
        with self._lock:
            now = self._clock()
            if self.current:
                key, _ = self._keys[self.current]
                self._keys[self.current] = (key, now)
            kid = secrets.token_hex(8)
            self._keys[kid] = (ec.generate_private_key(ec.SECP256R1()), None)
            self.current, self.created_at = kid, now
            self._prune(now)
            log.info("embedded issuer: signing key %s is current (%d published)", kid, len(self._keys))
            return kid

    def _prune(self, now: float) -> None:
        for kid, (_, retired) in list(self._keys.items()):
            if retired is not None and now - retired > self._overlap:
                del self._keys[kid]

    def sign(self, claims: Mapping[str, Any]) -> str:
        """A compact JWS of ``claims`` with the current key."""
        with self._lock:
            key = self._keys[self.current][0]
            kid = self.current
        return jwt.encode(dict(claims), key, algorithm="ES256", headers={"kid": kid, "typ": "JWT"})

    def verify(self, token: str, *, issuer: str, audience: str) -> dict[str, Any]:
        """Check a token this issuer signed (refresh tokens); :class:`AuthenticationFailed` otherwise."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            with self._lock:
                self._prune(self._clock())
                entry = self._keys.get(kid) if isinstance(kid, str) else None
            if entry is None:
                raise AuthenticationFailed("unknown signing key id")
            claims: dict[str, Any] = jwt.decode(
                token, entry[0].public_key(), algorithms=["ES256"], issuer=issuer, audience=audience
            )
        except jwt.exceptions.PyJWTError as exc:
            raise AuthenticationFailed(f"refresh token refused: {type(exc).__name__}") from None
        return claims

    def jwks(self) -> dict[str, Any]:
        """The public keys still in use, as a JWK set."""
        with self._lock:
            self._prune(self._clock())
            keys = []
            for kid, (key, _) in self._keys.items():
                jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
                keys.append({**jwk, "kid": kid, "use": "sig", "alg": "ES256"})
        return {"keys": keys}

    def kids(self) -> list[str]:
        """The published key ids, oldest first."""
        return [k["kid"] for k in self.jwks()["keys"]]


class EmbeddedIssuer:
    """The issuer: a Python object for tests and ``xhub auth serve``'s HTTP server.

    Example::

        with EmbeddedIssuer(IssuerConfig.from_toml("users.toml")) as issuer:
            validator = OIDCValidator(OIDCConfig(issuer=issuer.url, audience="xtremehub"))
            validator.validate(issuer.issue("alice", roles=["research"]))
    """

    def __init__(self, config: IssuerConfig, *, host: str = "127.0.0.1", port: int = 0, clock: Any = time.time) -> None:
        self.config = config
        self._clock = clock
        self.keys = SigningKeys(max(config.token_lifetime, config.refresh_lifetime), clock=clock)
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.issuer = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None
        bound_host, bound_port = self._httpd.server_address[:2]
        self.url = config.url or f"http://{bound_host!s}:{bound_port}"

    def __enter__(self) -> EmbeddedIssuer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Serve HTTP in a background thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": _STOP_POLL}, name="xhub-issuer", daemon=True
        )
        self._thread.start()
        log.info("embedded issuer serving %s", self.url)

    def serve_forever(self) -> None:
        """Serve HTTP in this thread (``xhub auth serve``) until :meth:`stop` or KeyboardInterrupt."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    # -- tokens ----------------------------------------------------------------------------
    def issue(
        self,
        subject: str,
        *,
        roles: list[str] | tuple[str, ...] = (),
        groups: list[str] | tuple[str, ...] = (),
        client: str = "xhub",
        lifetime: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """An access token for ``subject`` (also for tests: any lifetime, extra claims)."""
        self._maybe_rotate()
        now = self._clock()
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": subject,
            "aud": self.config.audience,
            "azp": client,
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + (self.config.token_lifetime if lifetime is None else lifetime)),
            "jti": secrets.token_hex(12),
            "realm_access": {"roles": list(roles)},
            "groups": list(groups),
            "typ": "Bearer",
        }
        claims.update(extra or {})
        return self.keys.sign(claims)

    def _maybe_rotate(self) -> None:
        if self._clock() - self.keys.created_at >= self.config.key_rotation:
            self.keys.rotate()

    def discovery(self) -> dict[str, Any]:
        """The OpenID discovery document."""
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/jwks",
            "token_endpoint": f"{self.url}/token",
            "grant_types_supported": ["client_credentials", "password", "refresh_token"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
        }

    def token_endpoint(self, form: Mapping[str, str], basic: tuple[str, str] | None) -> dict[str, Any]:
        """Handle one token request; :class:`_OAuthError` for an RFC 6749 error answer."""
        grant = form.get("grant_type", "")
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        if grant == "client_credentials":
            client = self._client(client_id, secret, confidential=True)
            return self._answer(client.name, client.roles, (), client.name, refresh=False)
        if grant == "password":
            client = self._client(client_id or "xhub-cli", secret, confidential=False)
            user = self.config.users.get(form.get("username", ""))
            if user is None or user.password_hash is None or not _check(form.get("password", ""), user.password_hash):
                raise _OAuthError("invalid_grant", "wrong user name or password")
            return self._answer(user.name, user.roles, user.groups, client.name, refresh=True)
        if grant == "refresh_token":
            try:
                claims = self.keys.verify(form.get("refresh_token", ""), issuer=self.url, audience=self.url)
            except AuthenticationFailed as exc:
                raise _OAuthError("invalid_grant", str(exc)) from None
            user = self.config.users.get(str(claims.get("sub")))
            if claims.get("token_use") != "refresh" or user is None:
                raise _OAuthError("invalid_grant", "not a refresh token of a known user")
            return self._answer(user.name, user.roles, user.groups, str(claims.get("azp", "xhub-cli")), refresh=True)
        raise _OAuthError("unsupported_grant_type", f"grant type {grant!r:.40} is not supported")

    def _client(self, client_id: str, secret: str, *, confidential: bool) -> ClientEntry:
        client = self.config.clients.get(client_id)
        if client is None and not confidential and client_id == "xhub-cli":
            return ClientEntry("xhub-cli")  # the public client of `xhub login`
        if client is None or (client.secret_hash is None and confidential):
            raise _OAuthError("invalid_client", "unknown client", HTTPStatus.UNAUTHORIZED)
        if client.secret_hash is not None and not _check(secret, client.secret_hash):
            raise _OAuthError("invalid_client", "client authentication failed", HTTPStatus.UNAUTHORIZED)
        return client

    def _answer(
        self, subject: str, roles: tuple[str, ...], groups: tuple[str, ...], client: str, *, refresh: bool
    ) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "access_token": self.issue(subject, roles=roles, groups=groups, client=client),
            "token_type": "Bearer",
            "expires_in": int(self.config.token_lifetime),
        }
        if refresh:
            now = self._clock()
            claims = {
                "iss": self.url,
                "aud": self.url,
                "sub": subject,
                "azp": client,
                "iat": int(now),
                "exp": int(now + self.config.refresh_lifetime),
                "jti": secrets.token_hex(12),
                "token_use": "refresh",
            }
            answer["refresh_token"] = self.keys.sign(claims)
        log.info("embedded issuer: token for %s (client %s)", subject, client)
        return answer


class _OAuthError(Exception):
    def __init__(self, error: str, description: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


class _Handler(BaseHTTPRequestHandler):
    server_version = "xhub-issuer"
    routes: ClassVar[tuple[str, ...]] = ("/.well-known/openid-configuration", "/jwks")

    def _issuer(self) -> EmbeddedIssuer:
        issuer: EmbeddedIssuer = self.server.issuer  # type: ignore[attr-defined]
        return issuer

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path == "/.well-known/openid-configuration":
            self._json(HTTPStatus.OK, self._issuer().discovery())
        elif path == "/jwks":
            self._json(HTTPStatus.OK, self._issuer().keys.jwks())
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not_found"})

    def do_POST(self) -> None:
        if urllib.parse.urlsplit(self.path).path != "/token":
            self._json(HTTPStatus.NOT_FOUND, {"error": "not_found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > 65536:
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "invalid_request"})
            return
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode("utf-8", "replace")))
        try:
            answer = self._issuer().token_endpoint(form, _basic(self.headers.get("Authorization")))
        except _OAuthError as exc:
            self._json(exc.status, {"error": exc.error, "error_description": exc.description})
            return
        self._json(HTTPStatus.OK, answer)

    def _json(self, status: HTTPStatus, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line only (never bodies: they hold passwords and secrets).
        log.debug("embedded issuer: %s %s", self.address_string(), format % args)


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return urllib.parse.unquote(user), urllib.parse.unquote(password)


def _check(secret: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(secret.encode(), hashed.encode())
    except ValueError:
        return False


def _typed(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{where}: expected {getattr(kind, '__name__', 'a number')}, got {value!r:.40}")
    return value


def _table(raw: Mapping[str, Any], name: str, source: str) -> dict[str, dict[str, Any]]:
    table = raw.get(name, {})
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise ConfigError(f"{source}: [{name}.<name>] must be tables")
    return table


def _optional_str(entry: Mapping[str, Any], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: expected a string")
    return value


def _str_list(entry: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.{key}: expected a list of strings")
    return tuple(value)
