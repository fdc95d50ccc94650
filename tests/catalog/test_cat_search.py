"""Search: full text over title, description, tags, URL and facts; facets; pages; hostile input."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from xtremehub.catalog import SearchQuery
from xtremehub.catalog.store import SqlCatalog
from xtremehub.errors import InvalidMetadata

FORMATS = ("fastq.gz", "vcf.gz", "imzml", "laz", "cog")
OWNERS = ("alice", "bob", "carol")


@pytest.fixture(scope="module")
def seeded(
    catalog_factory: Callable[[Path], SqlCatalog], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SqlCatalog]:
    """30 datasets: format i%5, owner i%3, tag even/odd (+ 'lung' every 4th), licence i%2."""
    with catalog_factory(tmp_path_factory.mktemp("seeded")) as cat:
        _seed(cat)
        yield cat


def _seed(fresh_catalog: SqlCatalog) -> None:
    for i in range(30):
        fmt = FORMATS[i % 5]
        fresh_catalog.register(
            f"s3://lab/project{i // 10}/sample{i:02d}.{fmt}",
            actor=OWNERS[i % 3],
            title=f"Sample {i:02d} {fmt.split('.')[0].upper()}",
            description="Lung cancer cohort" if i % 4 == 0 else "Healthy controls",
            tags=["even" if i % 2 == 0 else "odd", *(["lung"] if i % 4 == 0 else [])],
            licence="CC-BY-4.0" if i % 2 == 0 else "CC0-1.0",
            format=fmt,
            facts={"instrument": "NovaSeq" if fmt == "fastq.gz" else "Orbitrap", "index": {"contigs": [f"chr{i}"]}},
            source_version=f"e{i}",
        )


def test_full_text_over_every_field(seeded: SqlCatalog) -> None:
    def ids(text: str) -> set[str]:
        page = seeded.search(SearchQuery(text=text, limit=100))
        assert page.total == len(page.items)
        return {d.title for d in page.items}

    assert ids("sample 07") == {"Sample 07 IMZML"}  # title
    assert len(ids("cancer")) == 8  # description: i % 4 == 0
    assert len(ids("lung")) == 8  # tag and description
    assert ids("project2 sample25") == {"Sample 25 FASTQ"}  # URL words
    assert len(ids("novaseq")) == 6  # facts (values)
    assert ids("chr13") == {"Sample 13 LAZ"}  # nested facts
    assert len(ids("contigs")) == 30  # fact keys
    assert ids("novaseq orbitrap") == set()  # every word must match
    assert len(ids("NOVASEQ")) == 6  # case-insensitive


def test_facets_filters_and_counts(seeded: SqlCatalog) -> None:
    page = seeded.search(SearchQuery())
    assert page.total == 30
    assert page.facets["format"] == dict.fromkeys(FORMATS, 6)
    assert page.facets["owner"] == dict.fromkeys(OWNERS, 10)
    assert page.facets["tag"] == {"even": 15, "odd": 15, "lung": 8}
    assert page.facets["licence"] == {"CC-BY-4.0": 15, "CC0-1.0": 15}
    assert page.facets["kind"] == {"object": 30}
    q = SearchQuery(text="sample", filters={"format": ("vcf.gz", "laz"), "owner": ("alice",)}, limit=100)
    page = seeded.search(q)  # (format vcf.gz OR laz) AND owner alice
    expected = {i for i in range(30) if FORMATS[i % 5] in ("vcf.gz", "laz") and i % 3 == 0}
    assert {int(d.title.split()[1]) for d in page.items} == expected
    assert page.total == len(expected)
    assert page.facets["owner"] == {"alice": len(expected)}
    page = seeded.search(SearchQuery(filters={"tag": ("lung",), "licence": ("CC-BY-4.0",)}))
    assert page.total == 8
    assert page.facets["tag"] == {"even": 8, "lung": 8}


def test_pagination(seeded: SqlCatalog) -> None:
    pages = [seeded.search(SearchQuery(text="sample", limit=7, offset=o)) for o in range(0, 35, 7)]
    assert [len(p.items) for p in pages] == [7, 7, 7, 7, 2]
    assert {p.total for p in pages} == {30}
    seen = [d.id for p in pages for d in p.items]
    assert len(seen) == len(set(seen)) == 30
    assert seeded.search(SearchQuery(limit=5, offset=100)).items == ()


HOSTILE = [
    "'; DROP TABLE datasets; --",
    '" OR 1=1 --',
    "sample%",
    "_",
    "*",
    'sample" NEAR(a b',
    "sample OR lung",
    "NOT sample",
    "-sample",
    "title:sample",
    "sample AND (",
    "\\",
    "sample & | ! : *",
    "');select pg_sleep(5)--",
    "$$ $1 ?",
    "日本語 サンプル",
    "x" * 1000,
    "",
    "   ",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_only_words(seeded: SqlCatalog, text: str) -> None:
    page = seeded.search(SearchQuery(text=text, filters={"owner": (text[:200],)} if text.strip() else {}))
    assert page.total == len(page.items) == 0 or not text.strip()
    plain = seeded.search(SearchQuery(text=text))
    if text.strip() == "":
        assert plain.total == 30
    elif text in ("sample OR lung", "sample%", "sample AND (", "sample & | ! : *"):
        # operators are words: 'sample OR lung' needs a dataset holding the word "or" too
        assert plain.total == (30 if text in ("sample%", "sample & | ! : *") else 0)
    assert seeded.search(SearchQuery()).total == 30  # nothing dropped


def test_bad_queries_name_the_field(seeded: SqlCatalog) -> None:
    cases = [
        (SearchQuery(text="x" * 1001), "text"),
        (SearchQuery(text="a\x00b"), "text"),
        (SearchQuery(text=" ".join(["w"] * 33)), "text"),
        (SearchQuery(limit=0), "limit"),
        (SearchQuery(limit=1001), "limit"),
        (SearchQuery(offset=-1), "offset"),
        (SearchQuery(filters={"colour": ("red",)}), "filters.colour"),
        (SearchQuery(filters={"owner": ("o" * 300,)}), "filters.owner"),
    ]
    for query, field in cases:
        with pytest.raises(InvalidMetadata) as info:
            seeded.search(query)
        assert info.value.field == field
