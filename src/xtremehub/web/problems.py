"""Errors as HTTP answers: each XtremeHub error maps to one status, in one place, with an
RFC 9457 ``application/problem+json`` body.

=====================================================================  ======
error                                                                  status
=====================================================================  ======
malformed JSON, a bad URL (``..`` segments, unknown scheme), a bad     400
stream name or cut
missing or invalid bearer token (``WWW-Authenticate: Bearer``)         401
the policy denies it; the storage credentials are refused              403
no such dataset, version, access request, object, scope, stream,       404
reader group or job
a changed object between indexing and registration, an existing one    409
stale ``If-Match`` etag (a lost update refused)                        412
request body over the limit                                            413
unknown fields, bad values, too-long strings, unsupported data         422
``If-Match`` missing on an update                                      428
catalog database, object store or stream server unreachable; a stream  503
history not in long-term storage yet
=====================================================================  ======

The body never carries a token: messages of security errors never hold one, and any
``Bearer <...>``-looking text in a detail is replaced before it is sent.

Example:
    >>> from xtremehub.errors import DatasetNotFound, PreconditionFailed
    >>> status_of(DatasetNotFound("ds-9")), status_of(PreconditionFailed("ds-1", "3", "4"))
    (404, 412)
    >>> scrub("bad token Bearer eyJhbGciOi.x.y here")
    'bad token Bearer [redacted] here'
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from xtremehub import errors as e

__all__ = ["CATALOG_UNAVAILABLE", "PROBLEM_JSON", "HTTPProblem", "install_handlers", "problem", "scrub", "status_of"]

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
#: What a caller is told while the catalog's database is away (no host, port or database name).
CATALOG_UNAVAILABLE = "the catalog database cannot be reached right now; try again in a moment"
STREAMS_UNAVAILABLE = "the stream server cannot be reached right now; try again in a moment"
_TYPE_BASE = "https://xtremehub.dev/problems/"

#: First match wins: more specific classes come before their bases.
_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (e.AuthenticationFailed, 401),
    (e.Forbidden, 403),
    (e.KeyReleaseDenied, 403),
    (e.AccessDenied, 403),
    (e.DatasetNotFound, 404),
    (e.ObjectNotFound, 404),
    (e.ScopeNotFound, 404),
    (e.StreamNotFound, 404),
    (e.SegmentNotFound, 404),
    (e.ReaderGroupNotFound, 404),
    (e.CheckpointNotFound, 404),
    (e.PreconditionFailed, 412),
    (e.StalePolicy, 412),
    (e.StaleIndex, 409),
    (e.AlreadyExists, 409),
    (e.InvalidMetadata, 422),
    (e.UnsupportedData, 422),
    (e.CorruptData, 422),
    (e.UnsupportedURL, 400),
    (e.InvalidRange, 400),
    (e.PluginNotFound, 400),
    (e.HistoryNotTiered, 503),
    (e.InvalidStreamArgument, 400),
    (e.CatalogUnavailable, 503),
    (e.StorageUnavailable, 503),
    (e.ServerUnavailable, 503),
    (e.DataDirLocked, 503),
    (e.StoreClosed, 503),
    (e.MissingDependency, 501),
)
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    428: "Precondition Required",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def status_of(exc: BaseException) -> int:
    """The HTTP status of an error (500 for anything not mapped)."""
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def scrub(text: str) -> str:
    """``text`` with anything shaped like a bearer token or a JWT replaced."""
    return _JWT.sub("[redacted]", _BEARER.sub(r"\1[redacted]", text))


class HTTPProblem(Exception):
    """Raised by an endpoint for an HTTP-level refusal that is not a domain error (428, 413...)."""

    def __init__(self, status: int, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


def problem(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    kind: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """An ``application/problem+json`` response (RFC 9457)."""
    body: dict[str, Any] = {
        "type": _TYPE_BASE + kind if kind else "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": scrub(detail)[:2000],
    }
    if instance:
        body["instance"] = instance
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON)


def _kind(exc: BaseException) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", type(exc).__name__).lower()


def _errors(raw: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic's errors without the input values (they may be huge, or hold a secret)."""
    out = []
    for err in raw[:20]:
        loc = [str(p) for p in err.get("loc", ())]
        out.append({"field": ".".join(loc), "message": str(err.get("msg", ""))[:300], "type": err.get("type", "")})
    return out


def install_handlers(app: FastAPI) -> None:
    """Register the exception handlers that turn errors into problem responses."""

    async def xhub_error(request: Request, exc: Exception) -> JSONResponse:
        status = status_of(exc)
        headers: dict[str, str] = {}
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="xtremehub"' + (
                ', error="invalid_token"' if request.headers.get("authorization") else ""
            )
        elif status == 503:
            headers["Retry-After"] = "5"
        if status >= 500:
            log.warning("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, scrub(str(exc)))
        detail = str(exc) if status < 500 or status in (501, 503) else "internal error"
        # the log has the address of what is down, the caller does not (an internal endpoint)
        if isinstance(exc, e.CatalogUnavailable):
            detail = CATALOG_UNAVAILABLE
        elif isinstance(exc, e.StorageUnavailable):
            detail = f"{exc.url}: its storage cannot be reached right now; try again in a moment"
        elif isinstance(exc, e.ServerUnavailable):  # a refusal may say what to configure, without the address
            detail = getattr(exc, "public_detail", STREAMS_UNAVAILABLE)
        return problem(status, detail, instance=request.url.path, kind=_kind(exc), headers=headers)

    async def http_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPProblem)
        return problem(exc.status, exc.detail, instance=request.url.path, headers=exc.headers)

    async def starlette_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem(exc.status_code, str(exc.detail), instance=request.url.path, headers=exc.headers)

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errs = list(exc.errors())
        if any(err.get("type") == "json_invalid" for err in errs):
            where: dict[str, Any] = next((dict(err) for err in errs if err.get("type") == "json_invalid"), {})
            ctx = where.get("ctx") or {}
            detail = f"the request body is not valid JSON: {ctx.get('error', 'malformed')}"
            return problem(400, detail, instance=request.url.path, kind="malformed-json")
        fields = _errors(errs)
        if fields and all(
            f["field"].rsplit(".", 1)[-1] == "url" and f["type"] == "string_pattern_mismatch" for f in fields
        ):
            detail = (
                "the URL is refused: '.' and '..' segments (path traversal), control characters, "
                "backslashes and %-escapes are not allowed"
            )
            return problem(400, detail, instance=request.url.path, kind="refused-url", extra={"errors": fields})
        first = fields[0] if fields else {"field": "?", "message": "invalid"}
        detail = f"{first['field']}: {first['message']}" + (f" (and {len(fields) - 1} more)" if len(fields) > 1 else "")
        return problem(422, detail, instance=request.url.path, kind="validation", extra={"errors": fields})

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return problem(500, "internal error", instance=request.url.path)

    app.add_exception_handler(e.XHubError, xhub_error)
    app.add_exception_handler(HTTPProblem, http_problem)
    app.add_exception_handler(StarletteHTTPException, starlette_http)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(Exception, unexpected)
