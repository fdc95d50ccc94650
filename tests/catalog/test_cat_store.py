"""Datasets and versions: register, same/new source version, get, update and delete with etags."""

from __future__ import annotations

import pytest

from xtremehub.catalog import Dataset, DatasetPatch, Distribution, HealthFields, SearchQuery
from xtremehub.catalog.store import SqlCatalog
from xtremehub.errors import DatasetNotFound, InvalidMetadata, PreconditionFailed

URL = "s3://lab/run7/reads.fastq.gz"


def _register(cat: SqlCatalog, url: str = URL, etag: str = "e1", **kw: object) -> Dataset:
    args: dict[str, object] = {"title": "Run 7 reads", "format": "fastq.gz", "facts": {"reads": 1200}}
    args.update(kw)
    return cat.register(url, actor="alice", source_version=etag, **args)  # type: ignore[arg-type]


def test_register_then_versions_by_source_version(fresh_catalog: SqlCatalog) -> None:
    ds = fresh_catalog.register(
        URL,
        actor="alice",
        title="Run 7 reads",
        description="Lung CT cohort, run 7",
        tags=["wgs", "lung", "wgs"],
        licence="CC-BY-4.0",
        format="fastq.gz",
        facts={"reads": 1200, "bases": 180000},
        distributions=[Distribution(URL, "fastq.gz", "application/gzip", 4096, "md5:abc")],
        source_version="etag-1",
        health=HealthFields(health_category=("genomics",), number_of_records=1200),
    )
    assert (ds.latest_version, ds.owner, ds.tags, ds.kind) == (1, "alice", ("wgs", "lung"), "object")
    assert ds.health == HealthFields(health_category=("genomics",), number_of_records=1200)
    assert ds.created.tzinfo is not None
    same = fresh_catalog.register(URL, actor="bob", facts={"reads": 1}, source_version="etag-1")
    assert same == ds  # same etag: no new version, nothing changed
    v2 = fresh_catalog.register(URL, actor="alice", facts={"reads": 1500}, source_version="etag-2")
    assert (v2.id, v2.latest_version, v2.facts, v2.title) == (ds.id, 2, {"reads": 1500}, "Run 7 reads")
    assert v2.etag != ds.etag
    versions = fresh_catalog.versions(ds.id)
    assert [(v.number, v.source_version, dict(v.facts)) for v in versions] == [
        (1, "etag-1", {"reads": 1200, "bases": 180000}),
        (2, "etag-2", {"reads": 1500}),
    ]
    assert versions[0].distributions == (Distribution(URL, "fastq.gz", "application/gzip", 4096, "md5:abc"),)
    assert versions[1].distributions == (Distribution(URL, "fastq.gz"),)  # the URL itself by default
    assert fresh_catalog.get(ds.id) == v2
    assert fresh_catalog.find_by_url(URL) == v2
    assert fresh_catalog.find_by_url("s3://lab/other") is None


def test_update_needs_the_current_etag(fresh_catalog: SqlCatalog) -> None:
    ds = _register(fresh_catalog)
    new = fresh_catalog.update(ds.id, DatasetPatch(title="Run 7", tags=("cohort",)), actor="alice", if_match=ds.etag)
    assert (new.title, new.tags, new.description) == ("Run 7", ("cohort",), "")
    with pytest.raises(PreconditionFailed) as info:
        fresh_catalog.update(ds.id, DatasetPatch(title="lost"), actor="bob", if_match=ds.etag)
    assert info.value.current == new.etag
    assert fresh_catalog.get(new.id).title == "Run 7"
    page = fresh_catalog.search(SearchQuery(text="cohort"))
    assert [d.id for d in page.items] == [new.id]
    assert page.facets["tag"] == {"cohort": 1}
    assert fresh_catalog.search(SearchQuery(filters={"tag": ("wgs",)})).total == 0
    with pytest.raises(DatasetNotFound):
        fresh_catalog.update("ds-missing", DatasetPatch(title="x"), actor="alice", if_match="x")


def test_delete_needs_the_current_etag(fresh_catalog: SqlCatalog) -> None:
    ds = _register(fresh_catalog)
    with pytest.raises(PreconditionFailed):
        fresh_catalog.delete(ds.id, actor="alice", if_match="stale")
    fresh_catalog.delete(ds.id, actor="alice", if_match=ds.etag)
    with pytest.raises(DatasetNotFound, match="ds-"):
        fresh_catalog.get(ds.id)
    with pytest.raises(DatasetNotFound):
        fresh_catalog.versions(ds.id)
    assert fresh_catalog.search(SearchQuery(text="run")).total == 0
    again = _register(fresh_catalog)  # the URL is free again: a new dataset
    assert again.id != ds.id
    assert again.latest_version == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"title": "t" * 501}, "title"),
        ({"description": "bad \x00 byte"}, "description"),
        ({"tags": ["ok", "x" * 101]}, "tags[1]"),
        ({"tags": [f"t{i}" for i in range(65)]}, "tags"),
        ({"tags": "wgs"}, "tags"),
        ({"facts": {"when": {1, 2}}}, "facts"),
        ({"facts": {"x": float("nan")}}, "facts"),
        ({"facts": {"blob": "x" * 1_000_001}}, "facts"),
        ({"kind": "table"}, "kind"),
        ({"licence": "l" * 300}, "licence"),
        ({"actor": "eve; DROP TABLE datasets"}, "actor"),
        ({"url": "no-scheme"}, "url"),
        ({"url": "s3://b/" + "k" * 2100}, "url"),
        ({"etag": "e\n1"}, "source_version"),
    ],
)
def test_bad_metadata_names_the_field(fresh_catalog: SqlCatalog, kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"url": URL, "actor": "alice", "etag": "e1"}
    args.update(kwargs)
    url, actor, etag = args.pop("url"), args.pop("actor"), args.pop("etag")
    with pytest.raises(InvalidMetadata) as info:
        fresh_catalog.register(url, actor=actor, source_version=etag, facts=args.pop("facts", {}), **args)  # type: ignore[arg-type]
    assert info.value.field == field
    assert fresh_catalog.search(SearchQuery()).total == 0  # nothing half-written


def test_unknown_ids_are_dataset_not_found(fresh_catalog: SqlCatalog) -> None:
    for call in (lambda: fresh_catalog.get("ds-none"), lambda: fresh_catalog.versions("ds-none")):
        with pytest.raises(DatasetNotFound, match="ds-none"):
            call()
    with pytest.raises(InvalidMetadata, match="dataset_id"):
        fresh_catalog.get("x" * 100)
