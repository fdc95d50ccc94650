"""The demo's catalog, for the parts that record their runs in it (when the ``catalog`` extra is there).

Example:
    >>> import tempfile
    >>> from xtremehub.config import Settings
    >>> with tempfile.TemporaryDirectory() as tmp, demo_catalog(Settings(home=tmp)) as cat:
    ...     cat is None or cat.search.__name__ == "search"
    True
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from xtremehub.config import Settings
from xtremehub.errors import MissingDependency
from xtremehub.plugins import require_extra

__all__ = ["demo_catalog"]


@contextlib.contextmanager
def demo_catalog(settings: Settings) -> Iterator[Any]:
    """The configured catalog (default ``<home>/catalog.db``), or None without the ``catalog`` extra."""
    try:
        require_extra("the demo's data catalog", "catalog", "sqlalchemy", "alembic", "rdflib")
    except MissingDependency:
        yield None
        return
    from xtremehub.catalog import open_catalog

    with open_catalog(settings=settings) as cat:
        yield cat
