"""Jinja2 rendering of the cockpit's pages: autoescape always on, a few display filters.

Every value a template prints is HTML-escaped (``autoescape=True`` for every template, not
only ``.html`` ones); the only markup marked safe is what the cockpit draws itself (the
lineage SVG, whose text is XML-escaped by :func:`~xtremehub.web.lineage_svg.lineage_svg`).

Example:
    >>> env = environment()
    >>> env.from_string("{{ x }}").render(x="<script>alert(1)</script>")
    '&lt;script&gt;alert(1)&lt;/script&gt;'
    >>> human_bytes(1536), when(None)
    ('1.5 KiB', '-')
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

__all__ = ["TEMPLATES", "environment", "flatten_facts", "human_bytes", "page", "when"]

TEMPLATES = Path(__file__).resolve().parent / "templates"


def human_bytes(n: float | None) -> str:
    """``1536`` -> ``'1.5 KiB'``; None -> ``'-'``."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"  # pragma: no cover - the loop returns


def when(t: datetime | float | None) -> str:
    """A UTC time as ``2026-12-06 18:51:02``; Unix seconds too; None -> ``'-'``."""
    if t is None:
        return "-"
    if isinstance(t, int | float):
        t = datetime.fromtimestamp(float(t)).astimezone()
    return t.strftime("%Y-%m-%d %H:%M:%S")


def flatten_facts(facts: Mapping[str, Any], prefix: str = "", limit: int = 200) -> list[tuple[str, str]]:
    """Nested facts as ``(dotted key, short text)`` rows (long lists summarised), at most ``limit``.

    Example:
        >>> flatten_facts({"reads": 3, "header": {"version": "1.2"}, "contigs": list(range(30))})
        [('reads', '3'), ('header.version', '1.2'), ('contigs', '[0, 1, 2, 3, 4, 5, 6, 7, ... (30 items)]')]
    """
    rows: list[tuple[str, str]] = []
    for key, value in facts.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and len(value) <= 30:
            rows.extend(flatten_facts(value, name + ".", limit - len(rows)))
        elif isinstance(value, list | tuple) and len(value) > 8:
            head = json.dumps(list(value[:8]), default=str)[:-1]
            rows.append((name, f"{head}, ... ({len(value)} items)]"))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            rows.append((name, text if len(text) <= 300 else text[:299] + "…"))
        if len(rows) >= limit:
            break
    return rows[:limit]


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The cockpit's template environment (autoescaping every template)."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["bytes"] = human_bytes
    env.filters["when"] = when
    return env


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with ``context`` plus ``request`` and ``viewer`` (the identity, if known)."""
    context.setdefault("viewer", getattr(request.state, "cockpit_viewer", None))
    context.setdefault("secured", bool(getattr(request.state, "cockpit_secured", False)))
    context.setdefault("purpose", getattr(request.state, "cockpit_purpose", None) or "")
    html = environment().get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code, headers=_SECURITY_HEADERS)


#: No inline scripts anywhere, so the content security policy forbids them: an injected
#: ``<script>`` that escaped escaping would still not run.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
