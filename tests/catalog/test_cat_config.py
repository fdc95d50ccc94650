"""Where the catalog lives: argument > XHUB_CATALOG_URL > [catalog] url > <home>/catalog.db (WAL)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from xtremehub.catalog import open_catalog
from xtremehub.catalog.store.engine import resolve_url
from xtremehub.config import CatalogSettings, Settings
from xtremehub.errors import ConfigError, MissingDependency
from xtremehub.testing import postgres


def test_default_is_sqlite_in_home_with_wal(tmp_path: Path) -> None:
    with open_catalog(settings=Settings(home=tmp_path)) as cat:
        cat.register("s3://lab/x.fq", actor="alice", facts={}, source_version="e1")
        with cat._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert (tmp_path / "catalog.db").exists()


def test_url_order(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[catalog]\nurl = "postgresql://file@db/x"\nadmins = ["alice", "bob"]\n')
    from_file = Settings.load(config_file=config, env={})
    assert from_file.catalog == CatalogSettings(url="postgresql://file@db/x", admins=("alice", "bob"))
    from_env = Settings.load(config_file=config, env={"XHUB_CATALOG_URL": "sqlite:///env.db"})
    assert resolve_url(None, from_env) == "sqlite:///env.db"
    assert resolve_url(None, from_file) == "postgresql+psycopg://file@db/x"
    assert resolve_url("sqlite:///arg.db", from_env) == "sqlite:///arg.db"
    with pytest.raises(ConfigError, match=r"catalog\.url"):
        Settings.load(config_file=None, env={"XHUB_CATALOG_URL": "mysql://x"})
    with pytest.raises(ConfigError, match="catalog URL"):
        resolve_url("mysql://x", Settings(home=tmp_path))


def test_missing_postgres_binaries_say_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XHUB_PG_BINDIR", str(tmp_path))
    monkeypatch.setattr(postgres.glob, "glob", lambda _pattern: [])
    monkeypatch.setattr(postgres.shutil, "which", lambda _name: None)
    with pytest.raises(MissingDependency, match="apt-get install -y postgresql"):
        postgres.postgres_bindir()


def test_the_session_postgres_fixture_is_real(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW server_version").scalar()
            assert conn.exec_driver_sql("SELECT inet_server_addr()::text").scalar() == "127.0.0.1/32"
    finally:
        engine.dispose()
