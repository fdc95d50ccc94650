"""Catalog fixtures: every catalog test runs on SQLite and on a real PostgreSQL server.

``catalog_url``/``catalog``: one database per backend for the whole session (web and cockpit
tests use these); ``fresh_catalog``: an empty database per test, on the same backend param.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from xtremehub.catalog import open_catalog
from xtremehub.catalog.store import SqlCatalog
from xtremehub.config import CatalogSettings, Settings
from xtremehub.security.policy_store import PolicyStore
from xtremehub.testing.postgres import PostgresServer

BACKENDS = ("sqlite", "postgres")


@pytest.fixture(scope="session", params=BACKENDS)
def catalog_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _new_url(backend: str, request: pytest.FixtureRequest, where: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{where / 'catalog.db'}"
    # a copy of a database migrated once (CREATE DATABASE ... TEMPLATE): no migration per test
    return str(request.getfixturevalue("postgres").create_database(template=request.getfixturevalue("pg_template")))


@pytest.fixture(scope="session")
def pg_template(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PostgreSQL database migrated to the newest schema, copied by every new test database."""
    url = postgres.create_database("catalog_template")
    open_catalog(url, settings=Settings(home=tmp_path_factory.mktemp("template"))).close()
    return "catalog_template"


@pytest.fixture(scope="session")
def catalog_url(catalog_backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A catalog database URL for the session: SQLite file or a database on the real PostgreSQL."""
    return _new_url(catalog_backend, request, tmp_path_factory.mktemp(f"catalog-{catalog_backend}"))


def _open(url: str, home: Path) -> SqlCatalog:
    settings = Settings(home=home, catalog=CatalogSettings(admins=("root-admin",)))
    return open_catalog(url, settings=settings, policy_store=PolicyStore(str(home / "policies")))


@pytest.fixture(scope="session")
def catalog(catalog_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlCatalog]:
    """The session's catalog (shared: tests use their own URLs/tags)."""
    with _open(catalog_url, tmp_path_factory.mktemp("catalog-home")) as cat:
        yield cat


@pytest.fixture(scope="session")
def catalog_factory(catalog_backend: str, request: pytest.FixtureRequest) -> Callable[[Path], SqlCatalog]:
    """Opens a new, empty catalog on the session's backend, with its home in the given directory."""
    return lambda home: _open(_new_url(catalog_backend, request, home), home)


@pytest.fixture
def fresh_catalog(catalog_factory: Callable[[Path], SqlCatalog], tmp_path: Path) -> Iterator[SqlCatalog]:
    """An empty catalog of its own (counts and facets are exact), home and policies in ``tmp_path``."""
    with catalog_factory(tmp_path) as cat:
        yield cat
