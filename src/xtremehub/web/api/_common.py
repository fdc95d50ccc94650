"""What several routers share: the request's context, ``If-Match`` handling and ETag headers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Request, Response

from xtremehub.web.app import WebContext
from xtremehub.web.problems import HTTPProblem

__all__ = ["PROBLEM_RESPONSES", "IfMatch", "context", "require_if_match", "set_etag"]

#: Documented error answers of every authenticated endpoint (OpenAPI ``responses``).
PROBLEM_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"description": text, "content": {"application/problem+json": {}}}
    for status, text in (
        (400, "Bad request (malformed JSON, a refused URL)"),
        (401, "Missing or invalid bearer token"),
        (403, "The policy denies it"),
        (404, "Not found"),
        (413, "Request body too large"),
        (422, "Validation failed"),
        (503, "A backing service is unavailable"),
    )
}


def context(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.xhub
    return ctx


#: The ``If-Match`` header of an update. Optional to FastAPI (its absence is our 428, not a 422),
#: required in the OpenAPI document (:func:`xtremehub.web.app.create_app` marks it so).
IfMatch = Annotated[
    str | None, Header(alias="If-Match", max_length=300, description="the etag you read (required; 428 without)")
]


def require_if_match(header: str | None) -> str:
    """The etag of ``If-Match`` (quotes and ``W/`` removed); 428 when it is missing."""
    if header is None or not header.strip():
        raise HTTPProblem(428, "this update needs an If-Match header with the etag you read (GET it first)")
    value = header.strip()
    if value == "*":
        raise HTTPProblem(428, "If-Match: * is not accepted; send the etag you read so a lost update is refused")
    value = value.removeprefix("W/")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value


def set_etag(response: Response, etag: str) -> None:
    response.headers["ETag"] = f'"{etag}"'
