"""Who is looking at the cockpit: a login page and a session cookie holding the access token.

Security off (the embedded default): every page is served to the local single user, no login.
Security on: the login form asks the configured OpenID Provider for a token with the password
grant (public client ``xhub-cli``), checks it with the app's validator, and keeps it in a
cookie that scripts cannot read (``HttpOnly``) and that other sites' pages never send
(``SameSite=Strict``, which is also what protects the cockpit's forms from cross-site
requests); ``Secure`` when served over https. A page asked for without a valid token
redirects to the login page. The password is never stored or logged.

The viewer may state a purpose of use (the header's form, ``POST /cockpit/purpose``; kept in
a cookie like the session's): every decision of their pages is then taken for it, as the
API's ``X-XHub-Purpose`` header does, so that a dataset an approved access request lets them
read for that purpose appears in their search and opens.
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from xtremehub.errors import AuthenticationFailed, ConfigError, InvalidMetadata
from xtremehub.security.identity import Identity
from xtremehub.security.login import request_token
from xtremehub.security.oidc import fetch_json
from xtremehub.web.auth import stated_purpose
from xtremehub.web.cockpit.render import page

__all__ = ["COOKIE", "PURPOSE_COOKIE", "LoginRequired", "Viewer", "ViewerDep", "router", "viewer"]

log = logging.getLogger(__name__)

COOKIE = "xhub_session"
#: The cookie holding the viewer's stated purpose of use.
PURPOSE_COOKIE = "xhub_purpose"
CLIENT_ID = "xhub-cli"
_MAX_TOKEN = 16 * 1024

router = APIRouter(include_in_schema=False)


class LoginRequired(Exception):
    """No valid session: the handler installed by ``setup`` redirects to the login page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def login_redirect(request: Request, exc: Exception) -> Response:
    """The answer to :class:`LoginRequired`: 303 to ``/cockpit/login?next=...`` (htmx: a full reload)."""
    target = "/cockpit/login?" + urllib.parse.urlencode({"next": getattr(exc, "next_url", "/cockpit/")})
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


class Viewer:
    """The identity looking at a page, and the app's gate (to authorise what it does)."""

    def __init__(self, identity: Identity, context: Any, purpose: str | None = None) -> None:
        self.identity = identity
        self.context = context
        #: the stated purpose of use every decision of the page is taken for (None: none)
        self.purpose = purpose

    @property
    def subject(self) -> str:
        return self.identity.subject

    @property
    def catalog(self) -> Any:
        return self.context.catalog

    def can(self, action: Any, kind: str, name: str, /, **attributes: object) -> bool:
        from xtremehub.security.authz import Resource

        return bool(
            self.context.gate.allowed(self.identity, action, Resource(kind, name, attributes), purpose=self.purpose)
        )

    def can_each(self, action: Any, resources: Any) -> list[bool]:
        """:meth:`can` for each of ``resources`` (``Resource`` s), decided together."""
        allowed: list[bool] = self.context.gate.allowed_each(self.identity, action, resources, purpose=self.purpose)
        return allowed

    def must(self, action: Any, kind: str, name: str, /, **attributes: object) -> None:
        """Raise :class:`~xtremehub.errors.Forbidden` (403) unless allowed."""
        from xtremehub.security.authz import Resource

        self.context.gate.authorize(self.identity, action, Resource(kind, name, attributes), purpose=self.purpose)

    def readable(self, kind: str) -> Any:
        """The viewer's readable resources of ``kind`` as a condition (``Gate.readable``)."""
        return self.context.gate.readable(self.identity, kind, purpose=self.purpose)


def _safe_next(target: str) -> str:
    """Only paths of this site (no ``//host``, no scheme): an open redirect otherwise."""
    if not target.startswith("/cockpit") or target.startswith("//") or "\\" in target:
        return "/cockpit/"
    return target


def viewer(request: Request) -> Viewer:
    """FastAPI dependency: the page's viewer; :class:`LoginRequired` without a valid session."""
    context = request.app.state.xhub
    gate = context.gate
    request.state.cockpit_secured = gate.secured
    if not gate.secured:
        identity = gate.authenticate(None)
    else:
        token = request.cookies.get(COOKIE)
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if not token or len(token) > _MAX_TOKEN:
            raise LoginRequired(_safe_next(here))
        try:
            identity = gate.authenticate(token)
        except AuthenticationFailed:
            raise LoginRequired(_safe_next(here)) from None
    request.state.cockpit_viewer = identity
    try:
        purpose = stated_purpose(request.cookies.get(PURPOSE_COOKIE)) if gate.secured else None
    except InvalidMetadata:
        purpose = None  # a cookie this server did not write: no purpose
    request.state.cockpit_purpose = purpose
    return Viewer(identity, context, purpose)


ViewerDep = Annotated[Viewer, Depends(viewer)]


def token_endpoint(issuer: str) -> str:
    """The provider's token endpoint, from its discovery document."""
    document = fetch_json(issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=10.0)
    endpoint = document.get("token_endpoint")
    if not isinstance(endpoint, str):
        raise AuthenticationFailed(f"{issuer}: the discovery document names no token_endpoint")
    return endpoint


@router.get("/cockpit/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/cockpit/") -> HTMLResponse:
    secured = request.app.state.xhub.gate.secured
    request.state.cockpit_secured = secured
    return page(request, "login.html", next=_safe_next(next), error="", username="", enabled=secured)


@router.post("/cockpit/login", response_model=None)
def login_submit(
    request: Request,
    username: Annotated[str, Form(max_length=256)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=2048)] = "/cockpit/",
) -> Response:
    context = request.app.state.xhub
    request.state.cockpit_secured = context.gate.secured
    target = _safe_next(next)
    if not context.gate.secured:
        return RedirectResponse(target, status_code=303)
    issuer = context.config.oidc_issuer
    if not issuer:
        raise ConfigError("the cockpit login needs web.oidc_issuer")
    try:
        answer = request_token(
            token_endpoint(issuer),
            {"grant_type": "password", "username": username, "password": password, "client_id": CLIENT_ID},
            client_id=CLIENT_ID,
            client_secret=None,
        )
        token = str(answer["access_token"])
        identity = context.gate.authenticate(token)
    except AuthenticationFailed as exc:
        log.info("cockpit login of %r refused: %s", username[:64], exc)
        return page(
            request,
            "login.html",
            status_code=401,
            next=target,
            username=username,
            enabled=True,
            error="Wrong user name or password, or the identity provider refused the login.",
        )
    log.info("cockpit login: %s", identity.subject)
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(PURPOSE_COOKIE, path="/")  # a purpose is stated by whoever logs in, not inherited
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(answer.get("expires_in") or 3600),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/cockpit/logout")
def logout() -> RedirectResponse:
    response = RedirectResponse("/cockpit/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    response.delete_cookie(PURPOSE_COOKIE, path="/")
    return response


@router.post("/cockpit/purpose")
def set_purpose(
    request: Request,
    who: ViewerDep,
    purpose: Annotated[str, Form(max_length=2048)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/cockpit/",
) -> RedirectResponse:
    """State (or, empty, drop) the purpose of use the viewer's pages are decided for."""
    stated = stated_purpose(purpose)  # 400 when too long or with control characters
    response = RedirectResponse(_safe_next(next), status_code=303)
    if stated is None:
        response.delete_cookie(PURPOSE_COOKIE, path="/")
    else:
        response.set_cookie(  # percent-encoded: a cookie carries Latin-1 at most
            PURPOSE_COOKIE,
            urllib.parse.quote(stated, safe=""),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    log.info("cockpit: %s states purpose %r", who.subject, stated)
    return response
