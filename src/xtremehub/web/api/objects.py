"""Object previews: the head of an object (bytes and text lines), its size and content type.

``GET /api/v1/objects/preview?url=...`` reads at most ``bytes`` (capped by
``WebConfig.preview_max_bytes``) from the start of the object; text (UTF-8) also comes as lines.
The URL is checked before any store sees it (``.``/``..`` segments, control characters: 400),
and the request is authorised as ``read`` on the ``object`` resource of the URL.
"""

from __future__ import annotations

import base64
import mimetypes
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from xtremehub import storage
from xtremehub.security.authz import Action
from xtremehub.web.api._common import PROBLEM_RESPONSES, context
from xtremehub.web.auth import CallerDep
from xtremehub.web.urls import checked_url

__all__ = ["router"]

router = APIRouter(prefix="/objects", tags=["objects"], responses=PROBLEM_RESPONSES)

_GZIP = b"\x1f\x8b"
#: What the document promises is accepted (the code checks it again: :func:`checked_url`).
_SAFE_URL = r"^[^\x00-\x1f\x7f\\%]+$"


class PreviewOut(BaseModel):
    url: str
    size: int
    etag: str | None
    content_type: str
    head_base64: str
    head_bytes: int
    text: bool
    lines: list[str] | None
    truncated: bool


def content_type(url: str, head: bytes) -> tuple[str, bool]:
    """The media type (by name, then by the first bytes) and whether the head is UTF-8 text."""
    guessed, encoding = mimetypes.guess_type(url.split("?", 1)[0])
    try:
        head.decode("utf-8")
        is_text = b"\x00" not in head
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the end is still text
        is_text = exc.start >= len(head) - 3 and b"\x00" not in head
    if encoding == "gzip" or head.startswith(_GZIP):
        return "application/gzip", False
    if guessed:
        return guessed, is_text
    if head.startswith(b"\x89PNG"):
        return "image/png", False
    return ("text/plain" if is_text else "application/octet-stream"), is_text


@router.get("/preview", response_model=PreviewOut, summary="The head of an object: bytes, text lines, size, type")
def preview(
    request: Request,
    who: CallerDep,
    url: Annotated[
        str,
        Query(
            min_length=1,
            max_length=4096,
            pattern=_SAFE_URL,
            description="a storage URL or local path (no '.' or '..' segments, no control characters)",
        ),
    ],
    bytes: Annotated[int, Query(ge=1, le=1 << 20)] = 4096,
    lines: Annotated[int, Query(ge=0, le=1000)] = 20,
) -> PreviewOut:
    checked = checked_url(url)
    who.may(Action.READ, "object", checked)
    settings = context(request).settings
    info = storage.head(checked, settings=settings)
    n = min(bytes, context(request).config.preview_max_bytes)
    head = storage.get_range(checked, 0, n, settings=settings) if info.size else b""
    kind, is_text = content_type(checked, head)
    text_lines = None
    if is_text and lines:
        text_lines = [line[:1000] for line in head.decode("utf-8", errors="replace").splitlines()[:lines]]
    return PreviewOut(
        url=checked,
        size=info.size,
        etag=info.etag,
        content_type=kind,
        head_base64=base64.b64encode(head).decode(),
        head_bytes=len(head),
        text=is_text,
        lines=text_lines,
        truncated=info.size > len(head),
    )
