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

__all__ = ["SqlCatalog", "configured_audit_log", "open_catalog"]


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
        audit: where every change, access request and decision is appended; None: the
            configured log (``[catalog] audit_log``, default ``<home>/audit/catalog.log``, signed
            with ``<home>/audit.key``), opened here and closed with the catalog; none when that
            setting is ``"off"``.
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
    own = audit is None
    if own:
        try:
            audit = configured_audit_log(settings)
        except BaseException:
            engine.dispose()
            raise
    return SqlCatalog(
        engine, settings=settings, policy_store=policy_store, audit=audit, owns_audit=own, streams=streams
    )


def configured_audit_log(settings: Settings) -> AuditLog | None:
    """The catalog's audit log as ``settings`` configure it (None: ``audit_log = "off"``).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from xtremehub.config import CatalogSettings
        >>> home = Path(tempfile.mkdtemp())
        >>> log = configured_audit_log(Settings(home=home))
        >>> log.location == str(home / "audit" / "catalog.log")
        True
        >>> log.close()
        >>> configured_audit_log(Settings(home=home, catalog=CatalogSettings(audit_log="off"))) is None
        True
    """
    location = settings.catalog.audit_location(settings.home)
    if location is None:
        return None
    from xtremehub.security.audit import AuditConfig, AuditLog

    return AuditLog(AuditConfig(location=location, signing_key=settings.home / "audit.key", settings=settings))
