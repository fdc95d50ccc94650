"""Requests from other sites: refused before any endpoint sees them.

The security-off server (``xhub serve``, ``xhub demo --serve``) acts for the local user
without any credential, so a page of another site must neither reach it under a name it
controls (DNS rebinding) nor post to it (cross-site request forgery):

- the ``Host`` header must name this server: ``localhost``, ``127.0.0.1``, ``[::1]``, the
  configured host, or one of ``WebConfig.allowed_hosts`` (Starlette's
  ``TrustedHostMiddleware``, 400 otherwise), see :func:`allowed_hosts`;
- an unsafe method (anything but GET, HEAD, OPTIONS) whose ``Sec-Fetch-Site`` is neither
  ``same-origin`` nor ``none``, or whose ``Origin`` is not this server's, is **403**
  (:class:`SameOrigin`). Clients that send neither header (curl, the CLI, SDKs) are not
  browsers and pass.

Example:
    >>> from xtremehub.web.config import WebConfig
    >>> allowed_hosts(WebConfig(host="0.0.0.0", allowed_hosts=("hub.lab.example",)))
    ['localhost', '127.0.0.1', '[::1]', '0.0.0.0', 'hub.lab.example']
"""

from __future__ import annotations

import json
import urllib.parse

from starlette.types import ASGIApp, Receive, Scope, Send

from xtremehub.web.config import WebConfig
from xtremehub.web.problems import PROBLEM_JSON

__all__ = ["SAFE_METHODS", "SameOrigin", "allowed_hosts"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LOOPBACK = ("localhost", "127.0.0.1", "[::1]")


def allowed_hosts(config: WebConfig) -> list[str]:
    """The host names a request's ``Host`` header may carry (without port)."""
    configured = f"[{config.host}]" if ":" in config.host else config.host
    return list(dict.fromkeys((*_LOOPBACK, configured, *config.allowed_hosts)))


class SameOrigin:
    """ASGI middleware refusing unsafe methods sent by a page of another origin (403)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method", "GET") not in SAFE_METHODS:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
            reason = _cross_site(headers)
            if reason:
                await _refuse(send, reason)
                return
        await self.app(scope, receive, send)


def _cross_site(headers: dict[str, str]) -> str:
    """Why the request comes from another site ("" when it does not)."""
    fetch_site = headers.get("sec-fetch-site", "").strip().lower()
    if fetch_site and fetch_site not in ("same-origin", "none"):
        return f"a {fetch_site} request (Sec-Fetch-Site) may not change anything here"
    origin = headers.get("origin")
    if origin is not None:
        netloc = urllib.parse.urlsplit(origin.strip()).netloc.lower()
        if not netloc or netloc != headers.get("host", "").strip().lower():
            return f"a request from origin {origin[:200]!r} may not change anything on this server"
    return ""


async def _refuse(send: Send, detail: str) -> None:
    body = {"type": "about:blank", "title": "Forbidden", "status": 403, "detail": detail}
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})
