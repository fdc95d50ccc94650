"""Fixtures of the web tests: apps with security off and on (tokens from an embedded issuer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from xtremehub.catalog import open_catalog
from xtremehub.catalog.store import SqlCatalog
from xtremehub.cli.serve import security
from xtremehub.config import CatalogSettings, Settings
from xtremehub.security.issuer import EmbeddedIssuer, IssuerConfig
from xtremehub.security.oidc import OIDCConfig, OIDCValidator
from xtremehub.security.policy import PolicyConfig, build_authorizer
from xtremehub.security.policy_store import PolicyStore
from xtremehub.web import WebConfig, create_app

#: Cedar policies of the secured app: "research" reads and searches, "curator" does anything.
POLICIES = """
@id("discover") permit(principal, action == XHub::Action::"read", resource == XHub::Dataset::"*");
@id("research-reads") permit(principal in XHub::Role::"research", action == XHub::Action::"read", resource);
@id("curator-writes") permit(principal in XHub::Role::"curator", action, resource);
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


def sqlite_catalog(home: Path, *, admins: tuple[str, ...] = ("root-admin",)) -> SqlCatalog:
    """The real catalog store on a SQLite file under ``home`` (usage policies in ``home/policies``)."""
    settings = Settings(home=home, catalog=CatalogSettings(admins=admins))
    return open_catalog(
        f"sqlite:///{home / 'catalog.db'}", settings=settings, policy_store=PolicyStore(str(home / "policies"))
    )


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[SqlCatalog]:
    """An empty catalog of its own: the real store on SQLite."""
    home = tmp_path / "catalog-home"
    home.mkdir()
    with sqlite_catalog(home) as cat:
        yield cat


@pytest.fixture
def client(settings: Settings, catalog: SqlCatalog) -> Iterator[TestClient]:
    """Security off: the local single user."""
    app = create_app(WebConfig(), catalog=catalog, settings=settings)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture(scope="session")
def issuer() -> Iterator[EmbeddedIssuer]:
    with EmbeddedIssuer(IssuerConfig(audience="xtremehub")) as running:
        yield running


@pytest.fixture
def secured(tmp_path: Path, settings: Settings, catalog: SqlCatalog, issuer: EmbeddedIssuer) -> Iterator[TestClient]:
    """Security on: tokens from the embedded issuer, Cedar policies (:data:`POLICIES`)."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "web.cedar").write_text(POLICIES)
    validator = OIDCValidator(OIDCConfig(issuer=issuer.url, audience="xtremehub"))
    authorizer = build_authorizer(PolicyConfig(sources=(str(policies),)))
    config = WebConfig(security=True, oidc_issuer=issuer.url)
    app = create_app(config, catalog=catalog, settings=settings, validator=validator, authorizer=authorizer)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def with_usage_policies(
    tmp_path: Path, settings: Settings, catalog: SqlCatalog, issuer: EmbeddedIssuer, policies: str
) -> TestClient:
    """A secured app deciding with ``policies`` as ``xhub serve --policy`` does (:func:`security`): the
    usage policies the catalog's approvals write (``tmp_path/catalog-home/policies``) are read too,
    re-read at once after an approval or revocation. Use it as a context manager."""
    where = tmp_path / "pol"
    where.mkdir()
    (where / "web.cedar").write_text(policies)
    config = WebConfig(security=True, oidc_issuer=issuer.url, policy=(str(where),))
    validator, authorizer = security(config, Settings(home=tmp_path / "catalog-home"))
    app = create_app(config, catalog=catalog, settings=settings, validator=validator, authorizer=authorizer)
    return TestClient(app, base_url="http://127.0.0.1")


def bearer(issuer: EmbeddedIssuer, subject: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.issue(subject, roles=list(roles))}"}
