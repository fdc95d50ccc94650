"""The REST API and web cockpit of XtremeHub (``xhub serve``).

:func:`create_app` builds the FastAPI application from a frozen :class:`WebConfig`, the
catalog (:class:`~xtremehub.catalog.api.CatalogAPI`) and the settings; ``docs/web_api.md``
describes the endpoints, authentication and errors.
"""

from __future__ import annotations

from xtremehub.web.app import create_app
from xtremehub.web.config import API_PREFIX, WebConfig

__all__ = ["API_PREFIX", "WebConfig", "create_app"]
