"""DCAT-AP 3 export, validated with pyshacl against the official DCAT-AP 3.0.0 SHACL shapes."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyshacl
import pytest
from rdflib import RDF, Graph, Literal, Namespace, URIRef

from xtremehub.catalog.dcat import (
    DCAT,
    DCTERMS,
    HEALTHDCATAP,
    SHAPES,
    SPDX,
    Publisher,
    catalog_graph,
    dataset_graph,
    export_catalog,
    export_dataset,
)
from xtremehub.catalog.extract import extract
from xtremehub.catalog.model import Dataset, DatasetVersion, InputRef, JobRecord
from xtremehub.errors import InvalidMetadata

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

#: (file under tests/data, owner, tags, licence)
FILES = [
    ("vcf/ex1.vcf.gz", "alice@lab.example", ("variants", "wgs"), "CC-BY-4.0"),
    ("fastq/Illimina1.8.fq.gz", "alice@lab.example", ("reads",), "CC0-1.0"),
    ("imzml/Example_Continuous.imzML", "bob", ("msi",), None),
    ("las/simple.copc.laz", "carol", ("lidar",), "https://creativecommons.org/licenses/by/4.0/"),
    ("cog/cogeo.tif", "carol", ("satellite", "rgb"), "CC-BY-4.0"),
    ("fasta/ex1.fa", "dave", (), None),
]


@pytest.fixture(scope="module")
def shapes() -> Graph:
    assert SHAPES.is_file(), f"the DCAT-AP shapes are missing at {SHAPES}"
    return Graph().parse(SHAPES)


@pytest.fixture(scope="module")
def entries(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Dataset, list[DatasetVersion]]]:
    """Datasets of different formats with their extracted facts; the VCF has two versions."""
    root = tmp_path_factory.mktemp("dcat")
    data = Path(__file__).parents[1] / "data"
    out = []
    for n, (rel, owner, tags, licence) in enumerate(FILES, start=1):
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data / rel, target)
        if rel.endswith(".imzML"):
            shutil.copy((data / rel).with_suffix(".ibd"), target.with_suffix(".ibd"))
        e = extract(str(target))
        versions = [DatasetVersion(f"ds-{n}", 1, e.source_version, T0, e.distributions, e.facts)]
        if n == 1:
            versions.insert(0, DatasetVersion(f"ds-{n}", 0, "older-etag", T0 - timedelta(days=1), e.distributions))
        ds = Dataset(
            id=f"ds-{n}",
            kind="object",
            url=str(target),
            title=e.title,
            owner=owner,
            created=T0,
            modified=T0,
            etag="1",
            description=f"{e.format} test file" if n % 2 else "",
            tags=tags,
            licence=licence,
            format=e.format,
            latest_version=len(versions),
            facts=e.facts,
            health=e.health,
        )
        out.append((ds, versions))
    return out


SH = Namespace("http://www.w3.org/ns/shacl#")


def conforms(g: Graph, shapes: Graph) -> tuple[bool, str]:
    ok, _, text = pyshacl.validate(g, shacl_graph=shapes)
    return bool(ok), str(text)


def violated_paths(g: Graph, shapes: Graph) -> set[URIRef]:
    """The property paths of the minimum-count violations pyshacl reports."""
    ok, results, _ = pyshacl.validate(g, shacl_graph=shapes)
    assert not ok
    assert isinstance(results, Graph)
    return {
        URIRef(str(results.value(r, SH.resultPath)))
        for r in results.subjects(SH.sourceConstraintComponent, SH.MinCountConstraintComponent)
    }


@pytest.mark.parametrize("n", range(len(FILES)))
def test_each_dataset_conforms(entries: list[tuple[Dataset, list[DatasetVersion]]], shapes: Graph, n: int) -> None:
    ds, versions = entries[n]
    ok, report = conforms(dataset_graph(ds, versions), shapes)
    assert ok, report


# rdflib's own JSON-LD parser builds a ConjunctiveGraph, which rdflib 7 deprecates.
@pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")
def test_the_whole_catalog_conforms_in_jsonld_and_turtle(
    entries: list[tuple[Dataset, list[DatasetVersion]]], shapes: Graph
) -> None:
    publisher = Publisher("Lab data office", homepage="https://lab.example/", email="data@lab.example")
    for fmt, parser in (("jsonld", "json-ld"), ("turtle", "turtle")):
        text = export_catalog(entries, format=fmt, publisher=publisher)  # type: ignore[arg-type]
        g = Graph().parse(data=text, format=parser)
        ok, report = conforms(g, shapes)
        assert ok, report
        catalogs = list(g.subjects(RDF.type, DCAT.Catalog))
        assert len(catalogs) == 1
        assert len(list(g.objects(catalogs[0], DCAT.dataset))) == len(FILES)


def test_the_catalog_in_turtle_is_the_catalog_graph(entries: list[tuple[Dataset, list[DatasetVersion]]]) -> None:
    """Turtle is written dataset by dataset (rdflib's writer is superlinear): the same RDF graph."""
    from rdflib.compare import isomorphic

    from xtremehub.catalog.dcat import catalog_graph, serialize

    publisher = Publisher("Lab data office", homepage="https://lab.example/", email="data@lab.example")
    joined = Graph().parse(data=export_catalog(entries, format="turtle", publisher=publisher), format="turtle")  # type: ignore[arg-type]
    whole = Graph().parse(data=serialize(catalog_graph(entries, publisher=publisher), "turtle"), format="turtle")
    for g in (joined, whole):  # each export stamps its own time
        g.remove((URIRef("urn:xtremehub:catalog/"), DCTERMS.modified, None))
    assert len(joined) == len(whole) > 100
    assert isomorphic(joined, whole)


def test_versions_distributions_checksums_keywords(
    entries: list[tuple[Dataset, list[DatasetVersion]]],
) -> None:
    ds, versions = entries[0]
    g = dataset_graph(ds, versions)
    node = URIRef("urn:xtremehub:catalog/datasets/ds-1")
    assert len(list(g.objects(node, DCAT.hasVersion))) == 2
    assert g.value(node, DCAT.hasCurrentVersion) == URIRef(f"{node}/versions/1")
    assert {str(k) for k in g.objects(node, DCAT.keyword)} == {"variants", "wgs", "vcf"}
    dist = g.value(node, DCAT.distribution)
    assert g.value(dist, DCTERMS.license) == URIRef("https://spdx.org/licenses/CC-BY-4.0")
    assert int(g.value(dist, DCAT.byteSize)) == 16982
    checksum = g.value(dist, SPDX.checksum)
    assert str(g.value(checksum, SPDX.checksumValue)).startswith("71e1ec27")  # FACTS.json sha256
    assert g.value(checksum, SPDX.algorithm) == SPDX.checksumAlgorithm_sha256
    facts = json.loads(str(g.value(node, URIRef("https://xtremehub.dev/ns#facts"))))
    assert facts["variants"] == 165


def test_health_fields_for_genomics_and_metabolomics(
    entries: list[tuple[Dataset, list[DatasetVersion]]],
) -> None:
    vcf, _ = entries[0]
    g = dataset_graph(vcf)
    node = URIRef("urn:xtremehub:catalog/datasets/ds-1")
    assert int(g.value(node, HEALTHDCATAP.numberOfRecords)) == 165
    assert int(g.value(node, HEALTHDCATAP.numberOfUniqueIndividuals)) == 2
    assert (node, DCAT.theme, URIRef("http://publications.europa.eu/resource/authority/data-theme/HEAL")) in g
    imzml, _ = entries[2]
    g = dataset_graph(imzml)
    category = g.value(URIRef("urn:xtremehub:catalog/datasets/ds-3"), HEALTHDCATAP.healthCategory)
    assert category is not None
    assert str(category).endswith("metabolomics")
    cog, _ = entries[4]
    assert not list(dataset_graph(cog).triples((None, HEALTHDCATAP.numberOfRecords, None)))


def test_derived_dataset_names_its_job_and_inputs(shapes: Graph) -> None:
    out = Dataset(
        id="ds-out", kind="derived", url="s3://lab/out/counts.csv", title="counts", owner="alice",
        created=T0, modified=T0, etag="1", format="csv", facts={"rows": 3},
    )  # fmt: skip
    job = JobRecord(
        job_id="job-7", function="lab.count", owner="alice", started=T0, finished=T0 + timedelta(seconds=5),
        inputs=(InputRef("ds-1", 1),), outputs=("ds-out",), code_measurement="sha256:abc",
    )  # fmt: skip
    g = dataset_graph(out, job=job)
    ok, report = conforms(g, shapes)
    assert ok, report
    ttl = g.serialize(format="turtle")
    assert "prov:wasGeneratedBy" in ttl
    assert "prov:wasDerivedFrom <urn:xtremehub:catalog/datasets/ds-1/versions/1>" in ttl


@pytest.mark.parametrize("mandatory", [DCTERMS.title, DCTERMS.description])
def test_a_dataset_missing_a_mandatory_property_violates(
    entries: list[tuple[Dataset, list[DatasetVersion]]], shapes: Graph, mandatory: URIRef
) -> None:
    ds, versions = entries[1]
    g = dataset_graph(ds, versions)
    g.remove((URIRef("urn:xtremehub:catalog/datasets/ds-2"), mandatory, None))
    assert violated_paths(g, shapes) == {mandatory}


def test_a_distribution_without_access_url_violates(
    entries: list[tuple[Dataset, list[DatasetVersion]]], shapes: Graph
) -> None:
    ds, versions = entries[3]
    g = dataset_graph(ds, versions)
    g.remove((None, DCAT.accessURL, None))
    assert violated_paths(g, shapes) == {DCAT.accessURL}


def test_a_catalog_without_publisher_violates(
    entries: list[tuple[Dataset, list[DatasetVersion]]], shapes: Graph
) -> None:
    g = catalog_graph(entries[:2])
    catalog = next(iter(g.subjects(RDF.type, DCAT.Catalog)))
    g.remove((catalog, DCTERMS.publisher, None))
    assert violated_paths(g, shapes) == {DCTERMS.publisher}


def test_jsonld_is_compact_and_turtle_round_trips(entries: list[tuple[Dataset, list[DatasetVersion]]]) -> None:
    ds, versions = entries[0]
    doc = json.loads(export_dataset(ds, versions, format="jsonld"))
    assert doc["@context"]["dcat"] == "http://www.w3.org/ns/dcat#"
    ttl = export_dataset(ds, versions, format="turtle")
    assert len(Graph().parse(data=ttl, format="turtle")) == len(dataset_graph(ds, versions))
    title = Graph().parse(data=ttl, format="turtle").value(URIRef("urn:xtremehub:catalog/datasets/ds-1"), DCTERMS.title)
    assert title == Literal("ex1.vcf.gz")
    with pytest.raises(InvalidMetadata, match="format"):
        export_dataset(ds, format="rdfxml")  # type: ignore[arg-type]


def test_a_store_catalog_with_lineage_exports_conformant(tmp_path: Path, testdata: Path, shapes: Graph) -> None:
    from xtremehub import FunctionExecutor, storage
    from xtremehub.catalog import open_catalog
    from xtremehub.catalog.lineage import normalize_url

    shutil.copy(testdata / "vcf" / "index.vcf", tmp_path / "index.vcf")
    out = tmp_path / "copy.vcf"
    with open_catalog(f"sqlite:///{tmp_path / 'c.db'}") as cat:
        cat.register(normalize_url(str(tmp_path / "index.vcf")), actor="alice", licence="CC0-1.0")
        with FunctionExecutor(backend="local", workers=1, catalog=cat, owner="alice") as fexec:
            fexec.get_result(fexec.call_async(storage.copy, (f"file://{tmp_path}/index.vcf", f"file://{out}")))
        g = Graph().parse(data=export_catalog(cat, format="turtle"), format="turtle")
    ok, report = conforms(g, shapes)
    assert ok, report
    assert len(list(g.subjects(RDF.type, DCAT.Dataset))) >= 2
    assert "wasGeneratedBy" in g.serialize(format="turtle")


def test_cli_exports_a_dataset_and_the_catalog(tmp_path: Path, testdata: Path, shapes: Graph) -> None:
    from click.testing import CliRunner

    from xtremehub.cli import cli

    shutil.copy(testdata / "vcf" / "ex1.vcf.gz", tmp_path / "ex1.vcf.gz")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()

    def xhub(*args: str) -> str:
        result = runner.invoke(cli, ["--home", str(tmp_path), "catalog", "--catalog", url, "--as", "alice", *args])
        assert result.exit_code == 0, result.output + repr(result.exception)
        return result.output

    added = json.loads(xhub("add", f"file://{tmp_path}/ex1.vcf.gz", "--tag", "variants", "--json"))
    one = Graph().parse(data=xhub("export", added["id"], "--format", "turtle"), format="turtle")
    assert conforms(one, shapes)[0]
    assert [int(n) for n in one.objects(None, HEALTHDCATAP.numberOfRecords)] == [165]  # type: ignore[call-overload]
    xhub("export", "--format", "turtle", "-o", str(tmp_path / "all.ttl"))
    whole = Graph().parse(tmp_path / "all.ttl")
    ok, report = conforms(whole, shapes)
    assert ok, report
    assert len(list(whole.subjects(RDF.type, DCAT.Catalog))) == 1
