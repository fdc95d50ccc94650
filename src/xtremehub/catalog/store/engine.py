"""Connecting to the catalog database: URL resolution, SQLite pragmas, migrations, lost connections.

``resolve_url``: an explicit URL > ``XHUB_CATALOG_URL`` / ``[catalog] url`` (both already in
:class:`~xtremehub.config.Settings`) > ``sqlite:///<home>/catalog.db``. ``postgresql://`` URLs
use psycopg 3. SQLite runs in WAL mode with a busy timeout, foreign keys on, and every write
transaction starts with ``BEGIN IMMEDIATE`` (writers queue instead of failing on lock upgrade).

Example:
    >>> from pathlib import Path
    >>> from xtremehub.config import CatalogSettings, Settings
    >>> resolve_url(None, Settings(home=Path("/data/xhub")))
    'sqlite:////data/xhub/catalog.db'
    >>> resolve_url(None, Settings(catalog=CatalogSettings(url="postgresql://cat@db/xhub")))
    'postgresql+psycopg://cat@db/xhub'
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from importlib import resources
from typing import Any

from xtremehub.config import Settings
from xtremehub.errors import CatalogUnavailable, ConfigError, MissingDependency

__all__ = ["WRITE", "alembic_config", "catalog_errors", "make_engine", "migrate", "resolve_url"]

log = logging.getLogger(__name__)

#: Execution option marking a connection that writes (SQLite: ``BEGIN IMMEDIATE``).
WRITE = "xhub_write"
_MIGRATION_LOCK = 0x5848_5542  # "XHUB": PostgreSQL advisory lock id serialising migrations


def _sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError as exc:  # pragma: no cover - the extra is installed for tests
        raise MissingDependency("the catalog needs SQLAlchemy and Alembic: pip install 'xtremehub[catalog]'") from exc
    return sqlalchemy


def resolve_url(url: str | None, settings: Settings) -> str:
    """The SQLAlchemy URL of the catalog (see the module docstring for the order)."""
    url = url or settings.catalog.url
    if url is None:
        return f"sqlite:///{settings.home / 'catalog.db'}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("postgresql+psycopg://", "sqlite:")):
        return url
    raise ConfigError(f"catalog URL must be sqlite:///path or postgresql://..., not {url!r}")


def make_engine(url: str) -> Any:
    """A SQLAlchemy engine for ``url`` (already resolved), set up as the module docstring says."""
    sa = _sqlalchemy()
    if url.startswith("sqlite:"):
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (pysqlite's own is broken)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # Search reads many small index entries: map the file, keep more pages (32 MB).
            cur.execute("PRAGMA mmap_size=268435456")
            cur.execute("PRAGMA cache_size=-32768")
            cur.close()

        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

        sa.event.listen(engine, "connect", _on_connect)
        sa.event.listen(engine, "begin", _on_begin)

        class _Hinted(engine.dialect.statement_compiler):  # type: ignore[name-defined,misc]
            """Renders ``Select.with_hint(table, "INDEXED BY ix", "sqlite")`` after the table name."""

            def get_from_hint_text(self, table: Any, text: str | None) -> str | None:
                return text

        engine.dialect.statement_compiler = _Hinted

        return engine
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the extra is installed for tests
        raise MissingDependency("a PostgreSQL catalog needs psycopg 3: pip install 'xtremehub[catalog]'") from exc
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args={"connect_timeout": 5})


def alembic_config(connection: Any) -> Any:
    """An Alembic config for the migrations shipped in this package, bound to ``connection``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("xtremehub.catalog.store") / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Any, revision: str = "head") -> None:
    """Upgrade the schema to ``revision``, one process at a time (a lock per database)."""
    from alembic import command

    with catalog_errors(str(engine.url)), engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        command.upgrade(alembic_config(conn), revision)


@contextlib.contextmanager
def catalog_errors(where: str) -> Iterator[None]:
    """Turn a lost or refused database connection into :class:`CatalogUnavailable`."""
    sa = _sqlalchemy()
    try:
        yield
    except sa.exc.DBAPIError as exc:
        if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
            if _is_lock_timeout(exc):
                raise CatalogUnavailable(f"catalog {_safe(where)}: database is locked (busy for 30 s)") from exc
            raise CatalogUnavailable(f"catalog {_safe(where)} cannot be reached: {exc.orig}") from exc
        raise


def _is_lock_timeout(exc: Exception) -> bool:
    return "database is locked" in str(exc)


def _safe(url: str) -> str:
    """``url`` without a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':', 1)[0]}@{host}"
    return url
