"""Service credentials: tokens a server process gets for itself (no user, no ``xhub login``).

:class:`ClientCredentialsToken` asks the OpenID Provider's token endpoint with the
client-credentials grant and keeps the token in memory, asking again before it expires (the
secret is read from its file at each request, so it can be rotated without a restart).
:class:`TokenFile` reads a token some other agent keeps current: the ``token.json`` of
``xhub login`` (refreshed through :class:`~xtremehub.security.login.StoredToken`) or a file
holding only the token (a Kubernetes projected token, a vault agent's output), read again each
time it is asked for. Both are :class:`~xtremehub.security.identity.TokenProvider` s: pass them
as ``token=`` (``StreamManager("tcp://...", token=provider)`` asks at every (re)connection).

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "token"
    >>> _ = path.write_text("eyJhbGciOi...\\n")
    >>> TokenFile(path).token()
    'eyJhbGciOi...'
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from xtremehub.errors import AuthenticationFailed, ConfigError
from xtremehub.security.login import REFRESH_MARGIN, StoredToken, _read_secret, _token_endpoint, request_token

__all__ = ["ClientCredentialsToken", "TokenFile", "service_token"]

log = logging.getLogger(__name__)


class ClientCredentialsToken:
    """A service's own access token by the client-credentials grant, renewed before it expires.

    Args:
        issuer: the OpenID Provider (its discovery document names the token endpoint).
        client_id: the confidential client the service is registered as.
        secret_file: a file holding the client secret (read at each token request).
        scope: OAuth scopes to ask for, if any.
        margin: renew when fewer seconds than this are left (at most a quarter of the lifetime).
        clock: time source (tests).

    Attributes:
        expires_at: when the current token expires (0 before the first).
        requests: token requests made so far.
    """

    def __init__(
        self,
        issuer: str,
        client_id: str,
        secret_file: str | Path,
        *,
        scope: str | None = None,
        margin: float = REFRESH_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer, self.client_id, self.secret_file = issuer, client_id, Path(secret_file)
        self._scope, self._margin, self._clock = scope, margin, clock
        self._lock = threading.Lock()
        self._token = ""
        self._endpoint: str | None = None
        self.expires_at = 0.0
        self._lifetime = 0.0
        self.requests = 0

    def __repr__(self) -> str:  # never the token
        return f"ClientCredentialsToken({self.issuer!r}, client_id={self.client_id!r})"

    def token(self) -> str:
        """The current token, a new one when the old is within the margin of expiry."""
        with self._lock:
            margin = min(self._margin, self._lifetime / 4)
            if self._token and self.expires_at - self._clock() > margin:
                return self._token
            if self._endpoint is None:
                self._endpoint = _token_endpoint(self.issuer)
            secret = _read_secret(self.secret_file)
            now = self._clock()
            answer = request_token(
                self._endpoint,
                {"grant_type": "client_credentials", "scope": self._scope or ""},
                client_id=self.client_id,
                client_secret=secret,
            )
            lifetime = answer.get("expires_in")
            self._lifetime = float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else 300.0
            self._token, self.expires_at = str(answer["access_token"]), now + self._lifetime
            self.requests += 1
            log.info("service token for %s from %s (expires in %.0f s)", self.client_id, self.issuer, self._lifetime)
            return self._token


class TokenFile:
    """A token kept current in a file by someone else: ``xhub login``'s ``token.json``, or the bare token.

    Raises (from :meth:`token`):
        AuthenticationFailed: the file is missing, empty or unreadable (naming it, never its content).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r})"

    def token(self) -> str:
        """The token in the file now (a login record is refreshed when about to expire)."""
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise AuthenticationFailed(f"token file {self.path} does not exist") from None
        except OSError as exc:
            raise AuthenticationFailed(f"token file {self.path}: unreadable ({exc.strerror})") from None
        if text.startswith("{"):
            try:
                json.loads(text)
            except ValueError:
                raise AuthenticationFailed(f"token file {self.path}: neither a token nor JSON") from None
            return StoredToken(self.path).token()
        if not text or any(c.isspace() for c in text):
            raise AuthenticationFailed(f"token file {self.path}: not one token")
        return text


def service_token(
    *, issuer: str | None, client_id: str | None, secret_file: str | None, token_file: str | None
) -> ClientCredentialsToken | TokenFile | None:
    """The provider a setting names: client credentials (with ``issuer``), a token file, or none.

    Example:
        >>> service_token(issuer=None, client_id=None, secret_file=None, token_file="/run/token")
        TokenFile('/run/token')
    """
    if client_id and token_file:
        raise ConfigError("give a client id (client credentials) or a token file, not both")
    if client_id:
        if not secret_file:
            raise ConfigError(f"client {client_id!r}: the client credentials need a secret file")
        if not issuer:
            raise ConfigError(f"client {client_id!r}: the client credentials need an OpenID issuer")
        return ClientCredentialsToken(issuer, client_id, secret_file)
    if secret_file:
        raise ConfigError("a client secret file needs a client id")
    return TokenFile(token_file) if token_file else None
