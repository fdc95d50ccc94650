"""DCAT-AP 3 export of catalog datasets (and the whole catalog) as JSON-LD or Turtle.

The graph follows the DCAT-AP 3.0.0 application profile so that it validates against its
official SHACL shapes (tests/data/standards/dcat-ap-3.0.0-SHACL.ttl): every dataset has a
title, a description, a publisher (``foaf:Agent`` with a name), a contact point
(``vcard:Kind``), keywords, a licence (``dct:LicenseDocument``), distributions with
``dcat:accessURL``, ``dcat:byteSize``, media type / format and an ``spdx:Checksum``; each
content version is a ``dcat:Dataset`` of its own linked with ``dcat:hasVersion`` /
``dct:isVersionOf``, ``dcat:version`` and ``adms:versionNotes`` (the object etag or stream
cut). Health datasets carry HealthDCAT-AP fields (``healthdcatap:healthCategory``,
``numberOfRecords``, ``numberOfUniqueIndividuals``, ``populationCoverage``) and the EU data
theme HEAL. The connector's facts travel as one JSON literal (``xhub:facts``). A derived
dataset names the job that made it (``prov:wasGeneratedBy``) and its inputs
(``prov:wasDerivedFrom``).

Export functions take plain :class:`~xtremehub.catalog.model.Dataset` /
:class:`~xtremehub.catalog.model.DatasetVersion` values, or a
:class:`~xtremehub.catalog.api.CatalogAPI` for the whole catalog.

Example:
    >>> from datetime import datetime, timezone
    >>> from xtremehub.catalog.model import Dataset
    >>> t = datetime(2026, 12, 6, tzinfo=timezone.utc)
    >>> ds = Dataset(id="ds-1", kind="object", url="s3://lab/reads.fastq.gz", title="Run 7 reads",
    ...              owner="alice", created=t, modified=t, etag="1", format="fastq_gzip",
    ...              tags=("wgs",), licence="CC-BY-4.0")
    >>> g = dataset_graph(ds)
    >>> sorted(str(k) for k in g.objects(None, DCAT.keyword))
    ['fastq_gzip', 'wgs']
    >>> export_dataset(ds, format="turtle").count("a dcat:Dataset")
    1
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import quote

from rdflib import RDF, RDFS, XSD, BNode, Graph, Namespace, URIRef
from rdflib import Literal as Lit

from xtremehub.catalog.model import Dataset, DatasetVersion, Distribution, HealthFields, JobRecord, SearchQuery
from xtremehub.errors import InvalidMetadata

if TYPE_CHECKING:
    from xtremehub.catalog.api import CatalogAPI

__all__ = [
    "HEALTHDCATAP",
    "SHAPES",
    "Publisher",
    "catalog_graph",
    "dataset_graph",
    "export_catalog",
    "export_dataset",
    "serialize",
]

# Plain namespaces: rdflib's closed ones predate DCAT 3 (no dcat:hasVersion) and warn on its terms.
DCAT = Namespace("http://www.w3.org/ns/dcat#")
DCTERMS = Namespace("http://purl.org/dc/terms/")
FOAF = Namespace("http://xmlns.com/foaf/0.1/")
PROV = Namespace("http://www.w3.org/ns/prov#")
SKOS = Namespace("http://www.w3.org/2004/02/skos/core#")
ADMS = Namespace("http://www.w3.org/ns/adms#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
SPDX = Namespace("http://spdx.org/rdf/terms#")
#: HealthDCAT-AP vocabulary.
HEALTHDCATAP = Namespace("http://healthdataportal.eu/ns/health#")
XHUB = Namespace("https://xtremehub.dev/ns#")
_THEME = Namespace("http://publications.europa.eu/resource/authority/data-theme/")
_FILE_TYPE = Namespace("http://publications.europa.eu/resource/authority/file-type/")
_IANA = "https://www.iana.org/assignments/media-types/"

#: Where the official DCAT-AP 3.0.0 SHACL shapes are kept in the repository (tests use them).
SHAPES = Path(__file__).resolve().parents[3] / "tests" / "data" / "standards" / "dcat-ap-3.0.0-SHACL.ttl"

#: EU file-type authority codes of the formats that have one.
_FILE_TYPES = {"csv": "CSV", "text": "TXT", "cog": "TIFF", "imzml": "XML", "fastq_gzip": "GZIP"}
_CHECKSUM_ALGORITHMS = {
    "md5": "checksumAlgorithm_md5",
    "sha1": "checksumAlgorithm_sha1",
    "sha256": "checksumAlgorithm_sha256",
}

Format = Literal["jsonld", "turtle"]


@dataclass(frozen=True)
class Publisher:
    """Who publishes the catalog (DCAT-AP: mandatory ``dct:publisher`` of catalogs and datasets)."""

    name: str = "XtremeHub data catalog"
    homepage: str | None = None
    email: str | None = None


def _bind(g: Graph) -> Graph:
    for prefix, ns in (
        ("dcat", DCAT),
        ("dct", DCTERMS),
        ("foaf", FOAF),
        ("prov", PROV),
        ("skos", SKOS),
        ("adms", ADMS),
        ("vcard", VCARD),
        ("spdx", SPDX),
        ("healthdcatap", HEALTHDCATAP),
        ("xhub", XHUB),
    ):
        g.bind(prefix, ns)
    return g


class _Builder:
    """Adds nodes to one graph; IRIs under ``base``."""

    def __init__(self, g: Graph, base: str, publisher: Publisher) -> None:
        self.g, self.base, self.publisher = g, base.rstrip("/") + "/", publisher
        self._publisher_node: URIRef | None = None

    def iri(self, *parts: str) -> URIRef:
        return URIRef(self.base + "/".join(quote(p, safe="") for p in parts))

    def time(self, when: datetime) -> Lit:
        return Lit((when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat(), datatype=XSD.dateTime)

    def publisher_node(self) -> URIRef:
        if self._publisher_node is None:
            node = self.iri("publisher")
            self.g.add((node, RDF.type, FOAF.Agent))
            self.g.add((node, FOAF.name, Lit(self.publisher.name)))
            if self.publisher.homepage:
                page = URIRef(self.publisher.homepage)
                self.g.add((node, FOAF.homepage, page))
                self.g.add((page, RDF.type, FOAF.Document))
            if self.publisher.email:
                self.g.add((node, FOAF.mbox, URIRef(f"mailto:{self.publisher.email}")))
            self._publisher_node = node
        return self._publisher_node

    def agent(self, name: str) -> URIRef:
        node = self.iri("agents", name)
        self.g.add((node, RDF.type, FOAF.Agent))
        self.g.add((node, FOAF.name, Lit(name)))
        return node

    def contact(self, owner: str) -> URIRef:
        node = self.iri("contacts", owner)
        self.g.add((node, RDF.type, VCARD.Kind))
        self.g.add((node, VCARD.fn, Lit(owner)))
        if "@" in owner:
            self.g.add((node, VCARD.hasEmail, URIRef(f"mailto:{owner}")))
        return node

    def licence(self, licence: str) -> URIRef:
        node = URIRef(licence if "://" in licence else f"https://spdx.org/licenses/{quote(licence, safe='')}")
        self.g.add((node, RDF.type, DCTERMS.LicenseDocument))
        return node

    def concept(self, node: URIRef, label: str) -> URIRef:
        self.g.add((node, RDF.type, SKOS.Concept))
        self.g.add((node, SKOS.prefLabel, Lit(label, lang="en")))
        return node

    def distribution(self, owner: URIRef, dist: Distribution, n: int, licence: URIRef | None) -> None:
        g = self.g
        node = URIRef(f"{owner}/distributions/{n}")
        g.add((owner, DCAT.distribution, node))
        g.add((node, RDF.type, DCAT.Distribution))
        url = _as_iri(dist.url)
        g.add((url, RDF.type, RDFS.Resource))
        g.add((node, DCAT.accessURL, url))
        if dist.size is not None:
            g.add((node, DCAT.byteSize, Lit(dist.size, datatype=XSD.nonNegativeInteger)))
        if dist.media_type:
            media = URIRef(_IANA + dist.media_type)
            g.add((media, RDF.type, DCTERMS.MediaType))
            g.add((node, DCAT.mediaType, media))
        fmt = (
            URIRef(_FILE_TYPE[_FILE_TYPES[dist.format]])
            if dist.format in _FILE_TYPES
            else self.iri("formats", dist.format)
        )
        g.add((fmt, RDF.type, DCTERMS.MediaTypeOrExtent))
        g.add((node, DCTERMS["format"], fmt))
        g.add((node, DCTERMS.title, Lit(f"{dist.format} at {dist.url}")))
        if licence is not None:
            g.add((node, DCTERMS.license, licence))
        if dist.checksum:
            algorithm, _, value = dist.checksum.partition(":")
            if algorithm in _CHECKSUM_ALGORITHMS and value:
                checksum = BNode()
                alg = SPDX[_CHECKSUM_ALGORITHMS[algorithm]]
                g.add((alg, RDF.type, SPDX.ChecksumAlgorithm))
                g.add((node, SPDX.checksum, checksum))
                g.add((checksum, RDF.type, SPDX.Checksum))
                g.add((checksum, SPDX.algorithm, alg))
                g.add((checksum, SPDX.checksumValue, Lit(value, datatype=XSD.hexBinary)))

    def health(self, node: URIRef, health: HealthFields) -> None:
        g = self.g
        g.add((node, DCAT.theme, self.concept(_THEME.HEAL, "Health")))
        for category in health.health_category:
            g.add((node, HEALTHDCATAP.healthCategory, self.concept(self.iri("health-category", category), category)))
        if health.number_of_records is not None:
            g.add((node, HEALTHDCATAP.numberOfRecords, Lit(health.number_of_records, datatype=XSD.nonNegativeInteger)))
        if health.number_of_unique_individuals is not None:
            count = Lit(health.number_of_unique_individuals, datatype=XSD.nonNegativeInteger)
            g.add((node, HEALTHDCATAP.numberOfUniqueIndividuals, count))
        if health.population_coverage:
            g.add((node, HEALTHDCATAP.populationCoverage, Lit(health.population_coverage)))

    def dataset(self, ds: Dataset, versions: Sequence[DatasetVersion], job: JobRecord | None) -> URIRef:
        g = self.g
        node = self.iri("datasets", ds.id)
        g.add((node, RDF.type, DCAT.Dataset))
        g.add((node, DCTERMS.identifier, Lit(ds.id)))
        g.add((node, DCTERMS.title, Lit(ds.title)))
        g.add((node, DCTERMS.description, Lit(ds.description or _summary(ds))))
        g.add((node, DCTERMS.issued, self.time(ds.created)))
        g.add((node, DCTERMS.modified, self.time(ds.modified)))
        g.add((node, DCTERMS.publisher, self.publisher_node()))
        g.add((node, DCTERMS.creator, self.agent(ds.owner)))
        g.add((node, DCAT.contactPoint, self.contact(ds.owner)))
        landing = _as_iri(ds.url)
        g.add((node, XHUB.url, landing))
        g.add((node, XHUB.kind, Lit(ds.kind)))
        for tag in ds.tags:
            g.add((node, DCAT.keyword, Lit(tag)))
        if ds.format:
            g.add((node, DCAT.keyword, Lit(ds.format)))
        licence = self.licence(ds.licence) if ds.licence else None
        if ds.facts:
            g.add((node, XHUB.facts, Lit(json.dumps(dict(ds.facts), sort_keys=True, default=str), datatype=RDF.JSON)))
        if ds.health is not None:
            self.health(node, ds.health)
        if ds.latest_version:
            g.add((node, DCAT.version, Lit(str(ds.latest_version))))
        latest = max(versions, key=lambda v: v.number) if versions else None
        for v in versions:
            vnode = self.version(ds, v, licence)
            g.add((node, DCAT.hasVersion, vnode))
            g.add((vnode, DCTERMS.isVersionOf, node))
            if v is latest:
                g.add((node, DCAT.hasCurrentVersion, vnode))
        dists = latest.distributions if latest is not None else ()
        for n, dist in enumerate(dists or (Distribution(ds.url, ds.format or ds.kind),), start=1):
            self.distribution(node, dist, n, licence)
        if job is not None:
            self.job(node, job)
        return node

    def version(self, ds: Dataset, v: DatasetVersion, licence: URIRef | None) -> URIRef:
        g = self.g
        node = self.iri("datasets", ds.id, "versions", str(v.number))
        g.add((node, RDF.type, DCAT.Dataset))
        g.add((node, DCTERMS.title, Lit(f"{ds.title} (version {v.number})")))
        g.add((node, DCTERMS.description, Lit(f"Version {v.number} of {ds.title}: source version {v.source_version}")))
        g.add((node, DCTERMS.issued, self.time(v.created)))
        g.add((node, DCTERMS.publisher, self.publisher_node()))
        g.add((node, DCAT.version, Lit(str(v.number))))
        g.add((node, ADMS.versionNotes, Lit(f"source version {v.source_version}")))
        if v.facts:
            g.add((node, XHUB.facts, Lit(json.dumps(dict(v.facts), sort_keys=True, default=str), datatype=RDF.JSON)))
        for n, dist in enumerate(v.distributions, start=1):
            self.distribution(node, dist, n, licence)
        return node

    def job(self, node: URIRef, job: JobRecord) -> None:
        g = self.g
        activity = self.iri("jobs", job.job_id)
        g.add((activity, RDF.type, PROV.Activity))
        g.add((activity, DCTERMS.identifier, Lit(job.job_id)))
        g.add((activity, RDFS.label, Lit(job.function)))
        g.add((activity, PROV.startedAtTime, self.time(job.started)))
        g.add((activity, PROV.endedAtTime, self.time(job.finished)))
        g.add((activity, PROV.wasAssociatedWith, self.agent(job.owner)))
        if job.code_measurement:
            g.add((activity, XHUB.codeMeasurement, Lit(job.code_measurement)))
        g.add((node, PROV.wasGeneratedBy, activity))
        for ref in job.inputs:
            source = self.iri("datasets", ref.dataset_id, "versions", str(ref.version))
            g.add((node, PROV.wasDerivedFrom, source))
            g.add((activity, PROV.used, source))


def _as_iri(url: str) -> URIRef:
    """A storage URL as an absolute IRI (local paths become ``file://`` URLs)."""
    if "://" not in url:
        return URIRef(Path(url).absolute().as_uri())
    return URIRef(quote(url, safe=":/?#[]@!$&'()*+,;=%"))


def _summary(ds: Dataset) -> str:
    """A description made from the facts, for datasets registered without one."""
    shown = ", ".join(f"{k} {v}" for k, v in ds.facts.items() if isinstance(v, int | float | str) and len(str(v)) < 60)
    what = f"{ds.format or ds.kind} {ds.kind}"
    return f"{ds.title}: {what} at {ds.url}" + (f" ({shown})" if shown else "")


def dataset_graph(
    ds: Dataset,
    versions: Sequence[DatasetVersion] = (),
    *,
    job: JobRecord | None = None,
    publisher: Publisher | None = None,
    base: str = "urn:xtremehub:catalog",
) -> Graph:
    """One dataset (with its versions, and the job that produced it) as an RDF graph."""
    g = _bind(Graph())
    _Builder(g, base, publisher or Publisher()).dataset(ds, versions, job)
    return g


def catalog_graph(
    entries: Iterable[tuple[Dataset, Sequence[DatasetVersion]]],
    *,
    title: str = "XtremeHub data catalog",
    description: str = "Datasets registered in XtremeHub, with metadata extracted by its connectors.",
    publisher: Publisher | None = None,
    base: str = "urn:xtremehub:catalog",
    jobs: Mapping[str, JobRecord] | None = None,
) -> Graph:
    """A ``dcat:Catalog`` of ``(dataset, versions)`` entries; ``jobs`` maps derived dataset ids to their job."""
    g = _bind(Graph())
    builder = _Builder(g, base, publisher or Publisher())
    jobs = jobs if jobs is not None else {}
    catalog = builder.iri("")
    g.add((catalog, RDF.type, DCAT.Catalog))
    g.add((catalog, DCTERMS.title, Lit(title)))
    g.add((catalog, DCTERMS.description, Lit(description)))
    g.add((catalog, DCTERMS.publisher, builder.publisher_node()))
    g.add((catalog, DCTERMS.modified, builder.time(datetime.now(tz=UTC))))
    for ds, versions in entries:
        node = builder.dataset(ds, versions, jobs.get(ds.id))
        g.add((catalog, DCAT.dataset, node))
    return g


def _catalog_entries(
    api: CatalogAPI, jobs: dict[str, JobRecord], page: int = 200
) -> Iterator[tuple[Dataset, Sequence[DatasetVersion]]]:
    """Every dataset of ``api`` with its versions; fills ``jobs`` with the job of each derived one."""
    offset = 0
    while True:
        found = api.search(SearchQuery(limit=page, offset=offset))
        for ds in found.items:
            if ds.kind == "derived":
                made = [j for j in api.lineage(ds.id, direction="up", depth=1).jobs if ds.id in j.outputs]
                if made:
                    jobs[ds.id] = made[0]
            yield ds, api.versions(ds.id)
        offset += len(found.items)
        if not found.items or offset >= found.total:
            return


def serialize(g: Graph, format: Format = "jsonld") -> str:
    """The graph as JSON-LD (compacted with the DCAT-AP prefixes) or Turtle."""
    if format == "turtle":
        return g.serialize(format="turtle")
    if format == "jsonld":
        context = {prefix: str(ns) for prefix, ns in g.namespaces() if prefix}
        return g.serialize(format="json-ld", context=context, indent=1)
    raise InvalidMetadata("format", f"unknown export format {format!r}; use 'jsonld' or 'turtle'")


def export_dataset(
    ds: Dataset,
    versions: Sequence[DatasetVersion] = (),
    *,
    format: Format = "jsonld",
    job: JobRecord | None = None,
    publisher: Publisher | None = None,
) -> str:
    """One dataset as DCAT-AP 3 JSON-LD or Turtle."""
    return serialize(dataset_graph(ds, versions, job=job, publisher=publisher), format)


def export_catalog(
    source: CatalogAPI | Iterable[tuple[Dataset, Sequence[DatasetVersion]]],
    *,
    format: Format = "jsonld",
    publisher: Publisher | None = None,
    **options: Any,
) -> str:
    """The whole catalog (a :class:`CatalogAPI`, or ``(dataset, versions)`` pairs) as DCAT-AP 3."""
    jobs: dict[str, JobRecord] = dict(options.pop("jobs", None) or {})
    entries = _catalog_entries(cast("CatalogAPI", source), jobs) if hasattr(source, "search") else source
    if format == "turtle":
        return _catalog_turtle(entries, publisher=publisher, jobs=jobs, **options)
    return serialize(catalog_graph(entries, publisher=publisher, jobs=jobs, **options), format)


def _catalog_turtle(
    entries: Iterable[tuple[Dataset, Sequence[DatasetVersion]]],
    *,
    publisher: Publisher | None,
    jobs: Mapping[str, JobRecord],
    base: str = "urn:xtremehub:catalog",
    **options: Any,
) -> str:
    """:func:`catalog_graph` as Turtle, in time linear in the datasets.

    rdflib's Turtle writer takes time that grows faster than the graph (10,000 datasets: 762 s
    as one graph), so each dataset is written as a graph of its own (its blank nodes are its
    own; shared IRIs such as its agents are repeated, the same triples) and the documents are
    joined under one prefix list: the same RDF graph as the whole catalog written at once.
    """
    publisher = publisher or Publisher()
    head = catalog_graph((), publisher=publisher, base=base, jobs=jobs, **options)
    catalog = _Builder(head, base, publisher).iri("")
    documents: list[str] = []
    for ds, versions in entries:
        g = _bind(Graph())
        head.add((catalog, DCAT.dataset, _Builder(g, base, publisher).dataset(ds, versions, jobs.get(ds.id))))
        documents.append(g.serialize(format="turtle"))
    return _join_turtle([head.serialize(format="turtle"), *documents])


def _join_turtle(documents: Sequence[str]) -> str:
    """One Turtle document of ``documents``: their ``@prefix`` lines (the leading block each
    writer emits) once, then their statements. Refuses (``ValueError``) a prefix bound to two
    namespaces (rdflib names unbound ones ``ns1``, ``ns2``, ... per document)."""
    prefixes: dict[str, str] = {}
    bodies: list[str] = []
    for text in documents:
        lines = text.split("\n")
        n = 0
        while n < len(lines) and lines[n].startswith("@prefix "):
            name, iri = lines[n].split(None, 2)[1:3]
            if prefixes.setdefault(name, iri) != iri:
                raise ValueError(f"Turtle prefix {name} bound to {prefixes[name]} and {iri}")
            n += 1
        bodies.append("\n".join(lines[n:]).strip())
    head = "\n".join(f"@prefix {name} {iri}" for name, iri in prefixes.items())
    return head + "\n\n" + "\n\n".join(b for b in bodies if b) + "\n"
