"""The catalog as the executor's lineage sink: jobs become :class:`~xtremehub.catalog.model.JobRecord` s.

:class:`CatalogLineage` implements :class:`xtremehub.compute.lineage.LineageSink` over any
:class:`~xtremehub.catalog.api.CatalogAPI`. For each finished job it

- finds each object the job read in the catalog (an imzML ``.ibd`` counts as its ``.imzML``),
  registering the ones not there yet (with their extracted facts when a connector knows the
  format), and keeps which slices and byte ranges were read;
- registers each object the job wrote as a ``derived`` dataset (connector facts when the
  format is known, else size and etag), owned by the job's owner; index sidecars
  (``.xhub/``) are not datasets;
- records the job (function, owner, code measurement, parameters, telemetry summary) with
  its inputs and outputs, so ``lineage()`` walks from outputs to inputs and back.

``FunctionExecutor(catalog=cat)`` wraps ``cat`` in it; so does ``XHUB_CATALOG_LINEAGE=1`` with
the configured catalog (:func:`from_settings`).

Example:
    >>> import tempfile
    >>> from xtremehub import FunctionExecutor, storage
    >>> from xtremehub.catalog import open_catalog
    >>> root = tempfile.mkdtemp()
    >>> cat = open_catalog("sqlite:///:memory:")
    >>> _ = storage.put(f"file://{root}/in.txt", b"a\\nb\\n")
    >>> def upper(url):
    ...     storage.put(url.replace("in.txt", "out.txt"), storage.get(url).upper())
    >>> with FunctionExecutor(backend="local", workers=1, catalog=cat, owner="alice") as fexec:
    ...     _ = fexec.get_result(fexec.map(upper, [f"file://{root}/in.txt"]))
    >>> job = fexec.lineage.records[0]
    >>> [cat.get(d).url[-7:] for d in job.outputs], cat.get(job.inputs[0].dataset_id).url[-6:]
    (['out.txt'], 'in.txt')
    >>> cat.close()
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from xtremehub import storage
from xtremehub.catalog.extract import extract
from xtremehub.catalog.model import Dataset, DatasetKind, Distribution, InputRef, JobRecord
from xtremehub.compute.lineage import JobLineage, ReadRef
from xtremehub.config import Settings, default_settings
from xtremehub.errors import ConnectorError, Forbidden, ObjectNotFound

if TYPE_CHECKING:
    from xtremehub.catalog.api import CatalogAPI

__all__ = ["CatalogLineage", "from_settings", "normalize_url", "record_run"]

log = logging.getLogger(__name__)


def normalize_url(url: str) -> str:
    """A storage URL as the catalog keys it: local paths become ``file://`` URLs.

    Example:
        >>> normalize_url("/data/x.vcf"), normalize_url("s3://b/k")
        ('file:///data/x.vcf', 's3://b/k')
    """
    return url if "://" in url else "file://" + os.path.abspath(url)


class CatalogLineage:
    """Record executor jobs in ``catalog`` (see the module docstring).

    Args:
        catalog: any :class:`~xtremehub.catalog.api.CatalogAPI`.
        settings: how to reach the objects (extraction); default: the process settings.
    """

    def __init__(self, catalog: CatalogAPI, *, settings: Settings | None = None) -> None:
        self.catalog = catalog
        self.settings = settings or default_settings()

    def __repr__(self) -> str:
        return f"CatalogLineage({self.catalog!r})"

    def close(self) -> None:
        """Close the catalog (the executor calls it only for the catalog it opened from settings)."""
        close = getattr(self.catalog, "close", None)
        if close is not None:
            close()

    def record_lineage(self, job: JobLineage) -> JobRecord:
        """Register the job's inputs and outputs and record the job; returns the stored record."""
        inputs: dict[str, InputRef] = {}
        for ref in job.reads:
            ds = self._input(ref, job.owner)
            if ds is not None:
                version, note = self._version_of(ds, ref, job.owner)
                slices = (*ref.slices, *(f"bytes {a}-{b}" for a, b in ref.byte_ranges), *note)
                old = inputs.get(ds.id)
                merged = (*old.slices, *slices) if old else slices
                inputs[ds.id] = InputRef(ds.id, version, tuple(dict.fromkeys(merged)))
        outputs = []
        for url, size in job.writes:
            if "/.xhub/" in url:
                continue
            ds = self._register(normalize_url(url), job.owner, "derived", size)
            if ds is not None and ds.id not in inputs:
                outputs.append(ds.id)
        record = JobRecord(
            job_id=job.job_id,
            function=job.function,
            owner=job.owner,
            started=job.started,
            finished=job.finished,
            status=job.status,
            code_measurement=job.code_measurement,
            parameters=dict(job.parameters),
            telemetry=dict(job.telemetry),
            inputs=tuple(inputs.values()),
            outputs=tuple(outputs),
        )
        return self.catalog.record_job(record)

    def _input(self, ref: ReadRef, owner: str) -> Dataset | None:
        url = normalize_url(ref.url)
        candidates = [url]
        if url.lower().endswith(".ibd"):  # imzML spectra are read from the .ibd; the dataset is the .imzML
            candidates = [url[:-4] + ".imzML", url[:-4] + ".imzml", url]
        for candidate in candidates:
            found = self.catalog.find_by_url(candidate)
            if found is not None:
                return found
        if url.startswith("xhub-stream://"):
            return self.catalog.register(
                url, actor=owner, kind="stream", facts=_stream_facts(url, ref.version),
                source_version=ref.version or "unversioned", distributions=(Distribution(url, "stream"),),
            )  # fmt: skip
        for candidate in candidates[:-1]:
            if storage.exists(candidate, settings=self.settings):
                return self._register(candidate, owner, "object", None)
        return self._register(url, owner, "object", None)

    def _version_of(self, ds: Dataset, ref: ReadRef, owner: str) -> tuple[int, tuple[str, ...]]:
        """The version of ``ds`` the job read: the one of ``ref.version`` (a stream cut), added
        when new; else the latest. Returns it and a slice note when the cut could not be a version."""
        if ref.version is None or ds.kind != "stream":
            return ds.latest_version, ()
        for version in self.catalog.versions(ds.id):
            if version.source_version == ref.version:
                return version.number, ()
        try:
            ds = self.catalog.register(
                ds.url, actor=owner, kind="stream", facts=_stream_facts(ds.url, ref.version),
                source_version=ref.version, distributions=(Distribution(ds.url, "stream"),),
            )  # fmt: skip
        except Forbidden as exc:  # someone else's stream: keep the cut with the input instead
            log.info("lineage: no new version of %s for %s (%s); the cut stays with the input", ds.url, owner, exc)
            return ds.latest_version, (f"cut {ref.version}",)
        return ds.latest_version, ()

    def _register(self, url: str, owner: str, kind: DatasetKind, size: int | None) -> Dataset | None:
        """Register ``url`` with its connector facts, or (no connector) with its size and etag."""
        known = self.catalog.find_by_url(url)
        if known is not None:
            kind = known.kind  # a job that writes a registered object adds a version of it, same kind
        try:
            found = extract(url, settings=self.settings)
        except ObjectNotFound:
            log.warning("lineage: %s is gone; not registered", url)
            return None
        except ConnectorError as exc:  # no connector for the format, or not readable as it
            log.info("lineage: %s registered without connector facts (%s)", url, exc)
            info = storage.head(url, settings=self.settings)
            facts: dict[str, Any] = {"size": info.size if size is None else size}
            dist = Distribution(url, "unknown", size=info.size)
            return self.catalog.register(
                url, actor=owner, kind=kind, facts=facts, source_version=info.etag or "unversioned",
                distributions=(dist,),
            )  # fmt: skip
        return self.catalog.register(
            url, actor=owner, kind=kind, title=found.title or None, format=found.format, facts=dict(found.facts),
            distributions=found.distributions, source_version=found.source_version, health=found.health,
        )  # fmt: skip


def _stream_facts(url: str, cut: str | None) -> dict[str, Any]:
    """What a stream read at ``cut`` says of itself: scope, stream and each segment's end offset."""
    scope, _, stream = url.removeprefix("xhub-stream://").partition("/")
    facts: dict[str, Any] = {"scope": scope, "stream": stream}
    if cut is not None:
        positions = json.loads(cut).get("positions", {})
        facts.update(end_cut=positions, bytes=sum(int(v) for v in positions.values()))
    return facts


def from_settings(settings: Settings) -> CatalogLineage:
    """The lineage sink of the configured catalog (``[catalog] url``), for ``XHUB_CATALOG_LINEAGE=1``."""
    from xtremehub.catalog import open_catalog

    return CatalogLineage(open_catalog(settings=settings), settings=settings)


def record_run(
    catalog: CatalogAPI,
    function: str,
    *,
    inputs: Sequence[str | ReadRef],
    outputs: Sequence[str],
    owner: str,
    started: datetime,
    parameters: Mapping[str, Any] | None = None,
    telemetry: Mapping[str, Any] | None = None,
    status: Literal["succeeded", "failed"] = "succeeded",
    settings: Settings | None = None,
) -> JobRecord:
    """Record a whole pipeline run as one job: ``inputs`` (URLs read) -> ``outputs`` (URLs written).

    For pipelines whose outputs are written by the driver (a merged VCF, a results table) rather
    than by one executor job; the outputs become ``derived`` datasets linked to the inputs. An
    input is a URL, or a :class:`~xtremehub.compute.lineage.ReadRef` with the slices read and the
    version (a stream's cut, ``StreamCut.to_json()``: the stream's dataset gets a version per cut).

    Example:
        >>> import tempfile
        >>> from xtremehub.catalog import open_catalog
        >>> root = tempfile.mkdtemp()
        >>> _ = storage.put(f"{root}/in.csv", b"a\\n1\\n"); _ = storage.put(f"{root}/out.csv", b"b\\n2\\n")
        >>> with open_catalog("sqlite:///:memory:") as cat:
        ...     job = record_run(cat, "lab:step", inputs=[f"{root}/in.csv"], outputs=[f"{root}/out.csv"],
        ...                      owner="alice", started=datetime.now(tz=UTC))
        ...     cat.get(job.outputs[0]).kind, len(job.inputs)
        ('derived', 1)
    """
    settings = settings or default_settings()
    writes = tuple((url, storage.head(url, settings=settings).size) for url in outputs)
    lineage = JobLineage(
        job_id=f"run-{uuid.uuid4().hex[:12]}",
        function=function,
        owner=owner,
        started=started,
        finished=datetime.now(tz=UTC),
        status=status,
        parameters=dict(parameters or {}),
        telemetry=dict(telemetry or {}),
        reads=tuple(ref if isinstance(ref, ReadRef) else ReadRef(ref) for ref in inputs),
        writes=writes,
    )
    return CatalogLineage(catalog, settings=settings).record_lineage(lineage)
