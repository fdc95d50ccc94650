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

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from xtremehub.web.cockpit import access, datasets, jobs, session, streams
from xtremehub.web.cockpit.session import LoginRequired, login_redirect

__all__ = ["STATIC", "router", "setup"]

STATIC = Path(__file__).resolve().parent / "static"

router = APIRouter(include_in_schema=False)
for _module in (session, datasets, access, jobs, streams):
    router.include_router(_module.router)


@router.get("/")
@router.get("/cockpit")
@router.get("/cockpit/")
def home() -> RedirectResponse:
    return RedirectResponse("/cockpit/datasets", status_code=303)


def setup(app: FastAPI) -> None:
    """Serve the static files and redirect pages without a session to the login page."""
    app.mount("/cockpit/static", StaticFiles(directory=str(STATIC)), name="cockpit-static")
    app.add_exception_handler(LoginRequired, login_redirect)
