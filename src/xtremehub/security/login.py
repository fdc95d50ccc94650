"""``xhub login``: get a token from an OpenID Provider, keep it in a 0600 file, refresh it.

:func:`login` asks the provider's token endpoint (client-credentials or password grant) and
stores the answer in ``token.json`` under the user's config directory (``$XHUB_HOME`` when set,
else ``$XDG_CONFIG_HOME/xtremehub``, by default ``~/.config/xtremehub``), readable by the user
only. :class:`StoredToken` is the :class:`~xtremehub.security.identity.TokenProvider` reading
it: it refreshes the token when it is about to expire (refresh-token grant, or the client
credentials again with the secret read from the file named at login; a password is never
stored). Pass it as ``token=`` (``StreamManager("tcp://...", token=StoredToken())``).

Example:
    >>> import os
    >>> os.environ.get("XHUB_HOME") is None or token_path().name == "token.json"
    True
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from xtremehub.errors import AuthenticationFailed, ConfigError
from xtremehub.security._net import is_loopback_host
from xtremehub.security.oidc import fetch_json

__all__ = ["StoredToken", "config_dir", "login", "request_token", "token_path"]

log = logging.getLogger(__name__)

#: Refresh this many seconds before the token expires.
REFRESH_MARGIN = 30.0


def config_dir() -> Path:
    """Where ``xhub login`` keeps its token: ``$XHUB_HOME``, else ``$XDG_CONFIG_HOME/xtremehub``
    (``~/.config/xtremehub``)."""
    home = os.environ.get("XHUB_HOME")
    if home:
        return Path(home).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "xtremehub"


def token_path() -> Path:
    """The token file of :func:`login` and :class:`StoredToken`."""
    return config_dir() / "token.json"


def request_token(
    endpoint: str, form: Mapping[str, str], *, client_id: str, client_secret: str | None, timeout: float = 10.0
) -> dict[str, Any]:
    """POST a token request; the JSON answer, or :class:`AuthenticationFailed` naming the provider's error."""
    data = urllib.parse.urlencode({k: v for k, v in form.items() if v}).encode()
    request = urllib.request.Request(endpoint, data=data, method="POST")  # noqa: S310 - http(s) URL checked
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    request.add_header("Accept", "application/json")
    if client_secret is not None:
        pair = f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(client_secret, safe='')}"
        request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer = json.loads(response.read(1 << 20))
    except urllib.error.HTTPError as exc:
        detail = ""
        with contextlib.suppress(ValueError, OSError):
            body = json.loads(exc.read(1 << 16))
            detail = f": {body.get('error')}: {body.get('error_description', '')}"
        raise AuthenticationFailed(f"token endpoint {endpoint} refused the request (HTTP {exc.code}){detail}") from None
    except (OSError, ValueError) as exc:
        raise AuthenticationFailed(f"token endpoint {endpoint} unreachable or not JSON: {exc}") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
        raise AuthenticationFailed(f"token endpoint {endpoint} answered no access_token")
    return answer


def login(
    issuer: str,
    *,
    client_id: str = "xhub-cli",
    client_secret_file: str | Path | None = None,
    username: str | None = None,
    password: str | None = None,
    scope: str | None = None,
    path: Path | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Log in (password grant with ``username``, else client credentials) and store the token.

    Returns what was stored, without the tokens (safe to print).
    """
    host = urllib.parse.urlsplit(issuer).hostname or ""
    if not issuer.startswith("https://") and not (issuer.startswith("http://") and is_loopback_host(host)):
        raise ConfigError(f"xhub login: issuer {issuer!r} must be https:// (plain http only on loopback)")
    endpoint = _token_endpoint(issuer)
    secret = _read_secret(client_secret_file) if client_secret_file is not None else None
    if username is not None:
        form = {"grant_type": "password", "username": username, "password": password or "", "scope": scope or ""}
        grant = "password"
    elif secret is not None:
        form = {"grant_type": "client_credentials", "scope": scope or ""}
        grant = "client_credentials"
    else:
        raise ConfigError("xhub login: give --username (password grant) or --client-secret-file (client credentials)")
    if secret is None:
        form["client_id"] = client_id
    answer = request_token(endpoint, form, client_id=client_id, client_secret=secret)
    record = {
        "issuer": issuer,
        "token_endpoint": endpoint,
        "client_id": client_id,
        "grant": grant,
        "scope": scope,
        "client_secret_file": str(Path(client_secret_file).resolve()) if client_secret_file is not None else None,
    }
    stored = _record(record, answer, clock())
    _write(path or token_path(), stored)
    log.info("logged in at %s (%s grant); token stored in %s", issuer, grant, path or token_path())
    return {k: v for k, v in stored.items() if not k.endswith("_token")}


class StoredToken:
    """The token of ``xhub login``, refreshed when it is within ``margin`` seconds of expiry.

    Example::

        manager = StreamManager("tcp://streams:9090", token=StoredToken())
    """

    def __init__(
        self, path: Path | None = None, *, margin: float = REFRESH_MARGIN, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path or token_path()
        self._margin = margin
        self._clock = clock

    def token(self) -> str:
        """The current access token (refreshed and stored again when needed)."""
        record = self._load()
        if record["expires_at"] - self._clock() > self._margin:
            return str(record["access_token"])
        return str(self.refresh(record)["access_token"])

    def refresh(self, record: dict[str, Any] | None = None) -> dict[str, Any]:
        """Get a new token now (refresh-token grant, else client credentials) and store it."""
        record = record or self._load()
        endpoint, client_id = str(record["token_endpoint"]), str(record["client_id"])
        secret_file = record.get("client_secret_file")
        secret = _read_secret(secret_file) if secret_file else None
        if record.get("refresh_token"):
            form = {"grant_type": "refresh_token", "refresh_token": str(record["refresh_token"])}
        elif record.get("grant") == "client_credentials" and secret is not None:
            form = {"grant_type": "client_credentials", "scope": str(record.get("scope") or "")}
        else:
            raise AuthenticationFailed(
                f"the token in {self.path} expired and cannot be refreshed: run `xhub login` again"
            )
        if secret is None:
            form["client_id"] = client_id
        answer = request_token(endpoint, form, client_id=client_id, client_secret=secret)
        stored = _record(record, answer, self._clock())
        _write(self.path, stored)
        log.info("token in %s refreshed", self.path)
        return stored

    def _load(self) -> dict[str, Any]:
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AuthenticationFailed(f"no stored token at {self.path}: run `xhub login` first") from None
        except (OSError, ValueError) as exc:
            raise AuthenticationFailed(f"{self.path}: unreadable token file ({type(exc).__name__})") from None
        if not isinstance(record, dict) or not isinstance(record.get("access_token"), str):
            raise AuthenticationFailed(f"{self.path}: not a token file of `xhub login`")
        return record


def _token_endpoint(issuer: str) -> str:
    discovery = fetch_json(issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=10.0)
    endpoint = discovery.get("token_endpoint")
    if not isinstance(endpoint, str):
        raise AuthenticationFailed(f"identity provider {issuer}: no token_endpoint in its discovery document")
    return endpoint


def _read_secret(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the client secret: {exc.strerror}") from None


def _record(base: Mapping[str, Any], answer: Mapping[str, Any], now: float) -> dict[str, Any]:
    lifetime = answer.get("expires_in")
    expires_at = now + float(lifetime) if isinstance(lifetime, int | float) else now + 300.0
    record = {**base, "access_token": answer["access_token"], "expires_at": expires_at}
    refresh = answer.get("refresh_token")
    record["refresh_token"] = refresh if isinstance(refresh, str) else base.get("refresh_token")
    return record


def _write(path: Path, record: Mapping[str, Any]) -> None:
    """Write atomically, readable by the user only (0600 in a 0700 directory)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
