"""How the REST API (and the cockpit it serves) runs: a frozen :class:`WebConfig`.

Precedence, as for every XtremeHub setting: explicit arguments > ``XHUB_WEB_*`` environment
variables > the ``[web]`` table of the config file > defaults::

    [web]                               # XHUB_WEB_<FIELD>, e.g. XHUB_WEB_PORT=8080
    host = "127.0.0.1"                  # loopback by default: nothing is exposed by accident
    port = 8000
    max_body_bytes = 1048576            # larger request bodies get 413 before they are read
    security = true                     # bearer tokens required (false: a local single user)
    oidc_issuer = "https://idp.example/realms/health"
    oidc_audience = "xtremehub"
    policy = "/etc/xhub/policies"       # Cedar *.cedar files (comma-separated for several)
    audit_log = "/var/log/xhub/audit.jsonl"
    catalog = "sqlite:////data/xhub/catalog.sqlite"
    streams = "tcp://127.0.0.1:9090"    # a stream server, or a data directory (embedded)
    # the web server's own credential at a stream server that requires tokens (one of):
    streams_client_id = "xhub-web"      # client-credentials grant at oidc_issuer, renewed before expiry
    streams_client_secret_file = "/etc/xhub/web-client-secret"
    # streams_token_file = "/run/xhub/token"   # a token kept current by someone else (or xhub login's token.json)

CORS is deliberately absent: the cockpit is served by the same origin, and no other origin is
allowed to call the API from a browser.

Example:
    >>> c = WebConfig.load(env={"XHUB_WEB_PORT": "8080"}, config_file=None, host="127.0.0.1")
    >>> (c.host, c.port, c.security)
    ('127.0.0.1', 8080, False)
    >>> WebConfig(port=70000)
    Traceback (most recent call last):
    ...
    xtremehub.errors.ConfigError: web.port: 70000 is not a TCP port (0-65535)
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from xtremehub.config import default_config_path
from xtremehub.errors import ConfigError

__all__ = ["API_PREFIX", "WebConfig"]

#: URL schemes of a stream server (anything else in ``streams`` is an embedded store's data directory).
STREAM_SERVER_SCHEMES = ("tcp://", "tls://", "nats://")

#: Every API route lives under this versioned prefix (the OpenAPI document at ``<prefix>/openapi.json``).
API_PREFIX = "/api/v1"


@dataclass(frozen=True, kw_only=True)
class WebConfig:
    """Settings of ``xhub serve`` and :func:`~xtremehub.web.app.create_app`.

    Attributes:
        host: address to listen on (loopback by default).
        port: TCP port; 0 picks a free one.
        max_body_bytes: largest request body accepted; a larger one is refused with 413 before
            it is read (from ``Content-Length``, or while a chunked body streams in).
        security: require bearer tokens (``oidc_issuer``) and authorise every request; False
            serves one local user with every right (only sensible on loopback).
        oidc_issuer: the OpenID Provider whose tokens are accepted.
        oidc_audience: the audience tokens must carry.
        policy: Cedar policy sources (directories or storage URLs); empty: every valid token
            may do everything.
        audit_log: where authorisation decisions are appended (hash-chained), if anywhere.
        catalog: the catalog's database URL (None: the embedded SQLite under the data home).
        streams: ``tcp://`` stream server URL or a data directory of an embedded store
            (None: ``<home>/streams``, opened on first use).
        streams_client_id, streams_client_secret_file: the web server's service credential at a
            stream server requiring tokens: a client-credentials grant at ``oidc_issuer``, renewed
            before expiry. It only opens the connection: every request is still authorised for
            its caller by this server (see :mod:`xtremehub.web.streams`).
        streams_token_file: instead, a file holding the service token (or ``xhub login``'s
            ``token.json``), read at every (re)connection.
        telemetry_db: the optimizer's telemetry store (None: ``<home>/optimizer/telemetry.sqlite``).
        search_max_length: longest accepted search text (characters).
        page_max: largest page size of a listing.
        preview_max_bytes: most bytes an object preview returns.
        allowed_hosts: host names (besides ``localhost``, ``127.0.0.1``, ``[::1]`` and ``host``)
            a request's ``Host`` header may carry, e.g. the name a proxy serves it under;
            ``*.example.org`` allows subdomains. Others are refused (DNS rebinding).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1 << 20
    security: bool = False
    oidc_issuer: str | None = None
    oidc_audience: str = "xtremehub"
    policy: tuple[str, ...] = ()
    audit_log: str | None = None
    catalog: str | None = None
    streams: str | None = None
    streams_client_id: str | None = None
    streams_client_secret_file: str | None = None
    streams_token_file: str | None = None
    telemetry_db: str | None = None
    search_max_length: int = 1000
    page_max: int = 200
    preview_max_bytes: int = 64 * 1024
    allowed_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"web.port: {self.port} is not a TCP port (0-65535)")
        if self.max_body_bytes < 1024:
            raise ConfigError(f"web.max_body_bytes: {self.max_body_bytes} is below 1024 bytes")
        if isinstance(self.policy, str):
            raise ConfigError("web.policy must be a tuple of sources, not one string")
        if isinstance(self.allowed_hosts, str):
            raise ConfigError("web.allowed_hosts must be a tuple of host names, not one string")
        if self.security and not self.oidc_issuer:
            raise ConfigError("web.security needs web.oidc_issuer: tokens from which provider?")
        if self.policy and not self.security:
            raise ConfigError("web.policy needs web.security (tokens): without identities no request is authorised")
        if self.streams_client_id or self.streams_client_secret_file or self.streams_token_file:
            if not (self.streams or "").startswith(STREAM_SERVER_SCHEMES):
                raise ConfigError(
                    "web.streams_client_id/streams_token_file: a service credential is for a stream server "
                    f"(streams = tcp://...), not {self.streams or 'the embedded store'}"
                )
            try:
                self.stream_credential()
            except ConfigError as exc:
                raise ConfigError(f"web.streams_*: {exc}") from None
        for name in ("search_max_length", "page_max", "preview_max_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"web.{name} must be at least 1")

    def stream_credential(self) -> Any:
        """The service's token provider at the stream server (None: connect without a token).

        Example:
            >>> WebConfig(streams="tcp://127.0.0.1:9090", streams_token_file="/run/xhub/token").stream_credential()
            TokenFile('/run/xhub/token')
        """
        from xtremehub.security.service_token import service_token

        return service_token(
            issuer=self.oidc_issuer,
            client_id=self.streams_client_id,
            secret_file=self.streams_client_secret_file,
            token_file=self.streams_token_file,
        )

    @property
    def url(self) -> str:
        """``http://host:port`` (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def replace(self, **changes: Any) -> WebConfig:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(
        cls,
        *,
        config_file: Path | str | Literal["default"] | None = "default",
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> WebConfig:
        """``overrides`` (None values ignored) > ``XHUB_WEB_*`` in ``env`` > ``[web]`` of the file > defaults.

        ``XHUB_WEB_SECURITY`` and ``oidc_issuer`` imply each other: giving an issuer turns
        security on unless ``security`` is given as false.

        Raises:
            ConfigError: an unknown field, a value of the wrong type, or an inconsistent set.
        """
        env = os.environ if env is None else env
        raw: dict[str, Any] = {}
        path = default_config_path(env) if config_file == "default" else config_file
        if path is not None and (config_file != "default" or Path(path).exists()):
            raw = dict(_web_table(Path(path)))
        for f in dataclasses.fields(cls):
            var = f"XHUB_WEB_{f.name.upper()}"
            if var in env:
                raw[f.name] = env[var]
        raw.update({k: v for k, v in overrides.items() if v is not None and v != ()})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ConfigError(
                f"web: unknown setting(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
            )
        values = {name: _coerce(name, value) for name, value in raw.items()}
        if values.get("oidc_issuer") and "security" not in values:
            values["security"] = True
        return cls(**values)


_INTS = ("port", "max_body_bytes", "search_max_length", "page_max", "preview_max_bytes")


def _coerce(name: str, value: Any) -> Any:
    if name in _INTS:
        if isinstance(value, bool):
            raise ConfigError(f"web.{name}: cannot read {value!r} as an integer")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"web.{name}: cannot read {value!r} as an integer") from None
    if name == "security":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ConfigError(f"web.security: cannot read {value!r} as a boolean")
        return text in ("1", "true", "yes", "on")
    if name in ("policy", "allowed_hosts"):
        if isinstance(value, str):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        if isinstance(value, list | tuple) and all(isinstance(p, str) for p in value):
            return tuple(value)
        raise ConfigError(f"web.{name}: expected a list of strings, not {value!r}")
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    raise ConfigError(f"web.{name}: expected a string, not {value!r}")


def _web_table(path: Path) -> Mapping[str, Any]:
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    table = raw.get("web", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [web] must be a table, not {table!r}")
    return table
