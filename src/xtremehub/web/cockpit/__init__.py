"""The web cockpit: server-rendered pages over the catalog, jobs and streams (Jinja2, htmx).

:func:`xtremehub.web.app.create_app` includes :data:`router` at ``/`` and calls :func:`setup`,
which serves ``/cockpit/static`` (the stylesheet and the vendored htmx, no CDN: the
cockpit works without internet access) and turns a missing session into a redirect to the
login page. Pages: ``/cockpit/datasets`` (search, facets, pages) and a dataset's detail
with its preview and lineage, ``/cockpit/jobs``, ``/cockpit/streams`` (refreshing live),
``/cockpit/access`` (access requests), ``/cockpit/login``.

Every template autoescapes, the pages carry no inline script and a content security policy
that forbids inline scripts, so HTML in a description or a tag is shown as text.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from xtremehub.errors import CatalogUnavailable, XHubError
from xtremehub.web.cockpit import access, datasets, jobs, session, streams
from xtremehub.web.cockpit.render import page
from xtremehub.web.cockpit.session import LoginRequired, login_redirect

__all__ = ["STATIC", "router", "setup"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"

router = APIRouter(include_in_schema=False)
for _module in (session, datasets, access, jobs, streams):
    router.include_router(_module.router)


@router.get("/")
@router.get("/cockpit")
@router.get("/cockpit/")
def home() -> RedirectResponse:
    return RedirectResponse("/cockpit/datasets", status_code=303)


_Handler = Callable[[Request, Exception], Response | Awaitable[Response]]

#: What a page says when the catalog, or something else it needs, is away (503): never an address.
_CATALOG_AWAY = "The catalog cannot be reached right now. Try again in a moment."
_SERVICE_AWAY = "A service this page needs cannot be reached right now. Try again in a moment."


def _html_errors(api_handler: _Handler | None, status_of: Callable[[Exception], int]) -> _Handler:
    """Errors of cockpit pages as an HTML page (same status); the API keeps its problem+json."""

    async def handle(request: Request, exc: Exception) -> Response:
        path = request.url.path
        if (path.startswith("/cockpit/") and not path.endswith(".png")) or api_handler is None:
            status = status_of(exc)
            title = {401: "Not logged in", 403: "Not allowed", 404: "Not found"}.get(status, "Cannot do that")
            message = str(exc) if status < 500 else "internal error"
            if isinstance(exc, RequestValidationError):
                message = "; ".join(
                    f"{'.'.join(str(part) for part in err['loc'][1:])}: {err['msg']}" for err in exc.errors()[:5]
                )
            if status == 503:  # plain words: the log has the addresses, the page does not
                log.warning("%s %s: %s: %s", request.method, path, type(exc).__name__, exc)
                title = "Temporarily unavailable"
                message = _CATALOG_AWAY if isinstance(exc, CatalogUnavailable) else _SERVICE_AWAY
            shown = page(request, "error.html", status_code=status, title=title, message=message)
            if status == 503:
                shown.headers["Retry-After"] = "5"
            return shown
        answer = api_handler(request, exc)
        return await answer if isinstance(answer, Awaitable) else answer

    return handle


def setup(app: FastAPI) -> None:
    """Serve the static files, redirect pages without a session to the login page, and show
    errors of pages (403, 404, a refused form field) as HTML pages rather than API problems."""
    from xtremehub.web.problems import status_of

    app.mount("/cockpit/static", StaticFiles(directory=str(STATIC)), name="cockpit-static")
    app.add_exception_handler(LoginRequired, login_redirect)
    app.add_exception_handler(XHubError, _html_errors(app.exception_handlers.get(XHubError), status_of))
    app.add_exception_handler(
        RequestValidationError,
        _html_errors(app.exception_handlers.get(RequestValidationError), lambda exc: 422),
    )
