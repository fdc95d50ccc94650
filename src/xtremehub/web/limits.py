"""Request body size limit, enforced before the body is read.

A request whose ``Content-Length`` is over the limit is answered **413** without reading a
byte of its body; a chunked body (no length) is counted as it streams in and refused with 413
as soon as it passes the limit, so an endpoint never holds more than the limit in memory.

Example:
    >>> BodyLimit(app=None, max_bytes=1024).max_bytes  # type: ignore[arg-type]
    1024
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xtremehub.web.problems import PROBLEM_JSON

__all__ = ["BodyLimit", "BodyTooLarge"]


class BodyTooLarge(HTTPException):
    """A chunked body passed the limit while it was being read (answered 413).

    An ``HTTPException``: FastAPI passes those through while it reads a body (any other
    error there becomes its generic 400).
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body passed {limit} bytes, the most accepted", {"Connection": "close"})


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await _refuse(send, f"the request body has {length} bytes; at most {self.max_bytes} are accepted")
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _refuse(send, f"the request body passed {self.max_bytes} bytes, the most accepted")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, detail: str) -> None:
    body: dict[str, Any] = {"type": "about:blank", "title": "Content Too Large", "status": 413, "detail": detail}
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(data)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
