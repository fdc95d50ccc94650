"""The application factory: one FastAPI app serving the REST API (and the cockpit, when present).

Why FastAPI: the OpenAPI document is generated from the endpoints' type hints and pydantic
models (so it cannot drift from the code, and schemathesis tests the running app against it),
request bodies and parameters are validated by pydantic before an endpoint runs (unknown
fields, too-long strings, wrong types are 422s naming the field), and ``TestClient`` drives it
in-process in tests. ``uvicorn`` serves it (``xhub serve``).

Layout: ``/api/v1/...`` the versioned API (OpenAPI at ``/api/v1/openapi.json``, interactive
docs at ``/api/v1/docs``); ``/`` the cockpit's pages when :mod:`xtremehub.web.cockpit` exists
(it exposes ``router``, an ``APIRouter``; :func:`create_app` includes it with no prefix, and
calls its ``setup(app)`` too if it defines one).

Example:
    >>> from fastapi.testclient import TestClient
    >>> from xtremehub.config import Settings
    >>> app = create_app(WebConfig(), catalog=None, settings=Settings(home="/tmp/xhub-doc"))  # type: ignore[arg-type]
    >>> TestClient(app, base_url="http://127.0.0.1").get("/api/v1/health").json()["status"]
    'ok'
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.middleware.trustedhost import TrustedHostMiddleware

from xtremehub import __version__
from xtremehub.catalog.api import CatalogAPI
from xtremehub.config import Settings
from xtremehub.security.authz import Authorizer, ReloadableAuthorizer
from xtremehub.security.identity import TokenValidator
from xtremehub.web.auth import AllowAuthenticated, Gate
from xtremehub.web.config import API_PREFIX, WebConfig
from xtremehub.web.limits import BodyLimit
from xtremehub.web.origin import SameOrigin, allowed_hosts
from xtremehub.web.problems import install_handlers

__all__ = ["WebContext", "create_app"]

log = logging.getLogger(__name__)

#: The module whose ``router`` (and optional ``setup(app)``) :func:`create_app` mounts at ``/``.
COCKPIT_MODULE = "xtremehub.web.cockpit"


@dataclass
class WebContext:
    """What the endpoints share (``request.app.state.xhub``): config, catalog, settings, the
    auth gate, and the job and stream sources (opened on first use, closed with the app)."""

    config: WebConfig
    catalog: CatalogAPI
    settings: Settings
    gate: Gate
    stream_source: Any = None  # xtremehub.web.streams.StreamSource, opened lazily
    jobs_source: Any = None  # xtremehub.web.jobs.JobsSource, opened lazily
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def streams(self) -> Any:
        """The :class:`~xtremehub.web.streams.StreamSource` (created on first use)."""
        with self._lock:
            if self.stream_source is None:
                from xtremehub.web.streams import StreamSource

                token = self.config.stream_credential()  # the service's own, only to connect
                self.stream_source = StreamSource(self.config.streams, self.settings, token=token)
                self._closers.append(self.stream_source.close)
            return self.stream_source

    def jobs(self) -> Any:
        """The :class:`~xtremehub.web.jobs.JobsSource` (created on first use)."""
        with self._lock:
            if self.jobs_source is None:
                from xtremehub.web.jobs import JobsSource

                self.jobs_source = JobsSource(self.settings, self.config.telemetry_db, catalog=self.catalog)
                self._closers.append(self.jobs_source.close)
            return self.jobs_source

    def close(self) -> None:
        with self._lock:
            closers, self._closers = self._closers, []
        for close in reversed(closers):
            try:
                close()
            except Exception:
                log.exception("closing a web source failed")


def create_app(
    config: WebConfig,
    *,
    catalog: CatalogAPI,
    settings: Settings,
    validator: TokenValidator | None = None,
    authorizer: Authorizer | None = None,
    streams: Any = None,
    jobs: Any = None,
) -> FastAPI:
    """The FastAPI app of the REST API (and the cockpit, when :mod:`xtremehub.web.cockpit` exists).

    Args:
        config: how it runs (limits, security on or off).
        catalog: the catalog the endpoints read and write (the caller owns and closes it).
        settings: storage settings for object previews, the stream store and telemetry.
        validator: checks bearer tokens; needed when ``config.security`` (``xhub serve`` builds an
            :class:`~xtremehub.security.oidc.OIDCValidator` from ``config.oidc_issuer``).
        authorizer: decides every request (``build_authorizer`` of the policy engine); None with
            security on: every valid token may do everything. One that can reload
            (:class:`~xtremehub.security.authz.ReloadableAuthorizer`) re-reads its policies each
            time the catalog writes or removes a usage policy (an approval applies at once).
        streams: a ready :class:`~xtremehub.web.streams.StreamSource` (default: from ``config.streams``).
        jobs: a ready :class:`~xtremehub.web.jobs.JobsSource` (default: from settings).

    Raises:
        ConfigError: security on without a validator, an authorizer with security off, or a
            stream-server service credential with security on and no authorizer.
    """
    from xtremehub.errors import ConfigError

    if config.security and validator is None:
        raise ConfigError("security is on but no token validator was given (set oidc_issuer)")
    if authorizer is not None and validator is None:
        raise ConfigError("an authorizer needs token validation: without identities no request is authorised")
    if config.security and authorizer is None and config.stream_credential() is not None:
        raise ConfigError(
            "a stream-server service credential needs web policies (web.policy): without them every valid "
            "token could see every stream the service may read"
        )
    gate = Gate.local() if validator is None else Gate(validator, authorizer or AllowAuthenticated())
    context = WebContext(config, catalog, settings, gate, stream_source=streams, jobs_source=jobs)

    app = FastAPI(
        title="XtremeHub API",
        version=__version__,
        description="Catalog, lineage, access requests, jobs, streams and object previews of XtremeHub.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.xhub = context
    install_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(SameOrigin)  # no cross-site posts (CSRF), no rebound Host names (below)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(config))

    from xtremehub.web.api import routers

    for router in routers():
        app.include_router(router, prefix=API_PREFIX)
    _mount_cockpit(app)
    _document_if_match(app)
    if isinstance(authorizer, ReloadableAuthorizer) and catalog is not None:
        context._closers.append(catalog.on_policy_change(_reloader(authorizer)))
    app.router.add_event_handler("shutdown", context.close)
    return app


def _reloader(authorizer: ReloadableAuthorizer) -> Callable[[], None]:
    """What the catalog calls after it changed a usage policy: re-read the policies now."""

    def reload() -> None:
        from xtremehub.errors import ConfigError, StorageError

        try:
            authorizer.reload(force=True)
        except (ConfigError, StorageError) as exc:  # the timed reload retries; keep what is in force
            log.error("policies not reloaded after a usage-policy change: %s", exc)

    return reload


def _document_if_match(app: FastAPI) -> None:
    """Mark ``If-Match`` required in the OpenAPI document (the code answers 428 without it)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            for path in document.get("paths", {}).values():
                for operation in path.values():
                    for parameter in operation.get("parameters", ()):
                        if parameter.get("in") == "header" and parameter.get("name", "").lower() == "if-match":
                            parameter["required"] = True
                            parameter["schema"] = {"type": "string", "pattern": "^[!-~]{1,300}$"}
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _mount_cockpit(app: FastAPI) -> None:
    """Include the cockpit's pages when its package is installed (the one-line hook)."""
    if importlib.util.find_spec(COCKPIT_MODULE) is None:
        return
    cockpit = importlib.import_module(COCKPIT_MODULE)
    router = getattr(cockpit, "router", None)
    if router is not None:
        app.include_router(router)
    setup = getattr(cockpit, "setup", None)
    if callable(setup):
        setup(app)
