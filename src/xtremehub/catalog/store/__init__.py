"""The catalog's storage: one SQL schema on SQLite (embedded default) or PostgreSQL.

:func:`open_catalog` picks the database (argument > ``XHUB_CATALOG_URL`` > ``[catalog] url``
> ``<home>/catalog.db``), upgrades its schema with the Alembic migrations shipped here and
returns a :class:`~xtremehub.catalog.store.catalog.SqlCatalog`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xtremehub.catalog.store.catalog import SqlCatalog
from xtremehub.catalog.store.engine import make_engine, migrate, resolve_url
from xtremehub.config import Settings, default_settings

if TYPE_CHECKING:
    from xtremehub.catalog.streams import StreamStore
    from xtremehub.security.audit import AuditLog
    from xtremehub.security.policy_store import PolicyStore

__all__ = ["SqlCatalog", "open_catalog"]


def open_catalog(
    url: str | None = None,
    *,
    settings: Settings | None = None,
    policy_store: PolicyStore | None = None,
    audit: AuditLog | None = None,
    upgrade: bool = True,
    streams: StreamStore | None = None,
) -> SqlCatalog:
    """Open (creating and migrating as needed) the catalog at ``url``.

    Args:
        url: ``sqlite:///path.db``, ``sqlite:///:memory:`` or ``postgresql://user@host:port/db``;
            None: the configured one (see the module docstring).
        settings: where ``home``, the configured URL, the admins and the policy source come from.
        policy_store: where approved access requests become usage policies; None:
            ``[catalog] policies`` or ``<home>/policies/``.
        audit: every change is appended to it when given.
        upgrade: run the migrations to the newest revision (the default).
        streams: where ``xhub-stream://`` URLs are read (default: ``[catalog] streams``, see
            :mod:`xtremehub.catalog.streams`).

    Raises:
        CatalogUnavailable: the database cannot be reached.
        ConfigError: the URL is not a SQLite or PostgreSQL URL.
    """
    settings = settings or default_settings()
    engine = make_engine(resolve_url(url, settings))
    if upgrade:
        try:
            migrate(engine)
        except BaseException:
            engine.dispose()
            raise
    return SqlCatalog(engine, settings=settings, policy_store=policy_store, audit=audit, streams=streams)
