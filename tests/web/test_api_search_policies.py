"""A secured search lists exactly the datasets Cedar lets the caller read, page after page, with
counts over those only: whether the policies become one listing condition (filtered by the
catalog) or cannot (every match decided), and never showing one the engine denies."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import bearer
from xtremehub.catalog import SearchQuery
from xtremehub.catalog.store import SqlCatalog
from xtremehub.config import Settings
from xtremehub.security.authz import AccessRequest, Action, Resource
from xtremehub.security.identity import Identity
from xtremehub.security.issuer import EmbeddedIssuer
from xtremehub.security.oidc import OIDCConfig, OIDCValidator
from xtremehub.security.policy import CedarAuthorizer, PolicyConfig
from xtremehub.security.residual import Const
from xtremehub.web import WebConfig, create_app
from xtremehub.web.auth import Gate
from xtremehub.web.dataset_rules import dataset_attributes, visible_search

TRANSLATABLE = """
@id("discover") permit(principal, action == XHub::Action::"read", resource == XHub::Dataset::"*");
@id("own") permit(principal == XHub::User::"ann", action == XHub::Action::"read", resource is XHub::Dataset)
  when { resource has owner && resource.owner == "ann" };
@id("analysts") permit(principal in XHub::Role::"analyst", action == XHub::Action::"read", resource is XHub::Dataset)
  when { resource has tags && resource.tags.containsAny(["t0", "t2"]) && resource.kind != "stream" };
@id("named") permit(principal in XHub::Role::"auditor", action == XHub::Action::"read", resource)
  when { [XHub::Dataset::"NAMED1", XHub::Dataset::"NAMED2"].contains(resource) };
@id("one") permit(principal == XHub::User::"cy", action == XHub::Action::"read", resource == XHub::Dataset::"NAMED1");
@id("admins") permit(principal in XHub::Role::"admin", action, resource);
@id("embargo") forbid(principal, action == XHub::Action::"read", resource is XHub::Dataset)
  when { resource has tags && resource.tags.contains("embargo") } unless { principal in XHub::Role::"admin" };
"""
#: ``like`` has no listing condition: every match is decided one by one.
UNTRANSLATABLE = (
    TRANSLATABLE
    + """
@id("runs") permit(principal in XHub::Role::"runner", action == XHub::Action::"read", resource is XHub::Dataset)
  when { resource has owner && resource.owner like "b*" };
"""
)
#: A tag compared with another attribute has no listing condition either (it once became "never").
ATTRIBUTE_VS_ATTRIBUTE = (
    TRANSLATABLE
    + """
@id("self-tagged") forbid(principal, action == XHub::Action::"read", resource is XHub::Dataset)
  when { resource has tags && resource has owner && resource.tags.contains(resource.owner) }
  unless { principal in XHub::Role::"admin" };
"""
)
CALLERS = [
    ("ann",),
    ("bob", "analyst"),
    ("cy",),
    ("dee", "admin"),
    ("eve", "runner"),
    ("fay", "auditor"),
    ("ann", "analyst", "runner"),
]


def _fill(catalog: SqlCatalog) -> dict[str, str]:
    named = {}
    for i in range(26):
        ds = catalog.register(
            f"xhub-stream://pol/d{i:02d}" if i % 9 == 0 else f"s3://pol/d{i:02d}.csv",
            actor=("ann", "bob", "cy", "bert")[i % 4],
            kind="stream" if i % 9 == 0 else "object",
            title=f"dataset {i}",
            tags=[
                f"t{i % 3}",
                *(["embargo"] if i % 5 == 0 else []),
                *([("ann", "bob", "cy", "bert")[i % 4]] if i % 7 == 0 else []),  # tagged with its owner
            ],
            facts={},
            source_version="1",
        )
        if i in (3, 5):
            named[f"NAMED{len(named) + 1}"] = ds.id
    return named


@pytest.fixture(params=["translatable", "untranslatable", "attribute-vs-attribute"])
def policy_client(
    request: pytest.FixtureRequest, tmp_path: Path, settings: Settings, catalog: SqlCatalog, issuer: EmbeddedIssuer
) -> Iterator[tuple[TestClient, CedarAuthorizer, str]]:
    named = _fill(catalog)
    text = {
        "translatable": TRANSLATABLE,
        "untranslatable": UNTRANSLATABLE,
        "attribute-vs-attribute": ATTRIBUTE_VS_ATTRIBUTE,
    }[str(request.param)]
    for name, ds_id in named.items():
        text = text.replace(name, ds_id)
    c, authorizer = _app(tmp_path, settings, catalog, issuer, text)
    with c:
        yield c, authorizer, str(request.param)


def _app(
    tmp_path: Path, settings: Settings, catalog: SqlCatalog, issuer: EmbeddedIssuer, policies: str
) -> tuple[TestClient, CedarAuthorizer]:
    """A secured app deciding with Cedar ``policies`` only (enter the client to start it)."""
    where = tmp_path / "pol"
    where.mkdir()
    (where / "p.cedar").write_text(policies)
    authorizer = CedarAuthorizer(PolicyConfig(sources=(str(where),), reload_interval=0))
    validator = OIDCValidator(OIDCConfig(issuer=issuer.url, audience="xtremehub"))
    app = create_app(
        WebConfig(security=True, oidc_issuer=issuer.url),
        catalog=catalog,
        settings=settings,
        validator=validator,
        authorizer=authorizer,
    )
    return TestClient(app, base_url="http://127.0.0.1"), authorizer


@pytest.mark.parametrize("caller", CALLERS, ids="-".join)
@pytest.mark.parametrize("q", ["", "dataset"])
def test_secured_search_lists_exactly_what_cedar_allows_across_pages(
    policy_client: tuple[TestClient, CedarAuthorizer, str],
    catalog: SqlCatalog,
    issuer: EmbeddedIssuer,
    caller: tuple[str, ...],
    q: str,
) -> None:
    client, authorizer, _ = policy_client
    subject, *roles = caller
    who = Identity(subject, roles=frozenset(roles))
    every = catalog.search(SearchQuery(limit=100)).items
    allowed = [
        d for d in every
        if authorizer.decide(AccessRequest(who, Action.READ, Resource("dataset", d.id, dataset_attributes(d)))).allowed
    ]  # fmt: skip
    h = bearer(issuer, subject, *roles)
    listed: list[str] = []
    url: str | None = f"/api/v1/datasets?limit=3&q={q}"
    first = None
    while url is not None:
        r = client.get(url, headers=h)
        assert r.status_code == 200, r.text
        page = r.json()
        first = first or page
        listed += [d["id"] for d in page["items"]]
        url = page["next"]
    assert listed == [d.id for d in allowed]  # every allowed one, newest first, none twice, no other
    assert first is not None
    assert first["total"] == len(allowed)
    assert not first["total_is_lower_bound"]
    tags = Counter(t for d in allowed for t in d.tags)
    assert first["facets"]["tag"] == dict(tags)
    assert first["facets"]["owner"] == dict(Counter(d.owner for d in allowed))


def test_the_listing_condition_is_used_when_it_can_be(policy_client: tuple[TestClient, CedarAuthorizer, str]) -> None:
    _, authorizer, which = policy_client
    gate = Gate(None, authorizer)
    runner = gate.readable(Identity("eve", roles=frozenset({"runner"})), "dataset")
    assert (runner is None) == (which != "translatable")  # 'like', attribute vs attribute: decided one by one
    cy = gate.readable(Identity("cy"), "dataset")
    assert (cy is None) == (which == "attribute-vs-attribute")  # the 'like' policy is not cy's: a condition
    admin = gate.readable(Identity("dee", roles=frozenset({"admin"})), "dataset")
    # the untranslatable 'when' is met before the 'unless' that exempts admins: decided one by one (safe)
    assert admin == (None if which == "attribute-vs-attribute" else Const(True))


def test_a_page_item_the_engine_denies_is_never_shown(catalog: SqlCatalog) -> None:
    _fill(catalog)
    page = visible_search(catalog.search, SearchQuery(limit=10), lambda ds: [d.owner != "ann" for d in ds], Const(True))
    assert page.items
    assert all(d.owner != "ann" for d in page.items)


UNGUARDED_FORBID = """
@id("discover") permit(principal, action == XHub::Action::"read", resource == XHub::Dataset::"*");
@id("all") permit(principal, action == XHub::Action::"read", resource is XHub::Dataset);
@id("embargo") forbid(principal, action == XHub::Action::"read", resource is XHub::Dataset)
  when { GUARD resource.tags.contains("embargo") };
"""


@pytest.mark.parametrize("guard", ["", "resource has tags &&"], ids=["unguarded", "guarded"])
def test_an_unguarded_forbid_on_tags_fails_closed_for_search(
    tmp_path: Path, settings: Settings, catalog: SqlCatalog, issuer: EmbeddedIssuer, guard: str
) -> None:
    """The discovery resource ``Dataset::"*"`` has no ``tags``: an unguarded forbid errors on it,
    and an erroring forbid denies (fail closed), so every search is 403 until it is guarded."""
    _fill(catalog)
    app, _ = _app(tmp_path, settings, catalog, issuer, UNGUARDED_FORBID.replace("GUARD", guard))
    with app as client:
        r = client.get("/api/v1/datasets?q=dataset", headers=bearer(issuer, "bob"))
    if guard:
        assert r.status_code == 200, r.text
        assert r.json()["items"]
        assert all("embargo" not in d["tags"] for d in r.json()["items"])
    else:
        assert r.status_code == 403, r.text
        assert "embargo" in r.text  # the failing policy is named
