"""Where the API finds jobs: the optimizer's telemetry store, the telemetry directory, the catalog.

Jobs come from three places, merged by job id: the optimizer's SQLite telemetry store
(:class:`~xtremehub.optimizer.store.TelemetryStore`, ``<home>/optimizer/telemetry.sqlite`` by
default, where ``make demo`` records its jobs), the executor's JSON-lines files
(``<job_id>.jsonl``) under ``settings.telemetry.dir`` when one is configured, and the catalog's
job records (lineage: ``FunctionExecutor(catalog=...)``, ``record_run``). A job's rows are
:class:`~xtremehub.compute.telemetry.TaskTelemetry` records, so the summary
(:class:`~xtremehub.compute.summary.JobStats`) and the plots
(:func:`~xtremehub.compute.plots.plot_telemetry`) are the executor's own. A job only the catalog
knows has no rows: its summary is the one its record keeps, and it has no plots.

The failures of a job (:meth:`JobsSource.job`) are its failed calls, each with the message and
remote traceback the catalog's record keeps for it (:mod:`xtremehub.compute.failures`).

Example:
    >>> import tempfile
    >>> from xtremehub.config import Settings
    >>> source = JobsSource(Settings(home=tempfile.mkdtemp()))
    >>> source.list_jobs()
    []
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sqlite3
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xtremehub.catalog.api import CatalogAPI
from xtremehub.catalog.model import JobRecord
from xtremehub.compute.failures import CallFailure, recorded_failures
from xtremehub.compute.summary import JobStats
from xtremehub.compute.telemetry import TaskTelemetry
from xtremehub.config import Settings
from xtremehub.errors import DatasetNotFound, TelemetryCorrupt
from xtremehub.optimizer.store import JobRow, TelemetryStore, read_jsonl

__all__ = ["JobView", "JobsSource"]

log = logging.getLogger(__name__)

_TELEMETRY_FIELDS = tuple(f.name for f in dataclasses.fields(TaskTelemetry))
#: At most this many of the catalog's most recent jobs are listed.
MAX_CATALOG_JOBS = 1000


@dataclass(frozen=True)
class JobView:
    """One job as the API and the cockpit show it.

    Attributes:
        rows: its telemetry records in call order (empty: only the catalog knows the job).
        stats: the aggregates (of the rows, else those the catalog's record keeps).
        record: the catalog's job record, if any.
        failures: the failed calls, with message and remote traceback where the record keeps them.
        failures_omitted: failed calls not in ``failures`` (a record keeps the first few only).
    """

    job_id: str
    function: str
    rows: list[TaskTelemetry]
    stats: JobStats
    record: JobRecord | None
    failures: list[CallFailure]
    failures_omitted: int


class JobsSource:
    """Jobs and their telemetry rows, read from the telemetry store and directory and the catalog
    on each call.

    Args:
        settings: ``home`` locates the default store, ``telemetry.dir`` the JSON-lines files.
        store_path: the telemetry store (None: ``<home>/optimizer/telemetry.sqlite``).
        catalog: the catalog whose job records are merged in (None: telemetry only).
    """

    def __init__(self, settings: Settings, store_path: str | None = None, catalog: CatalogAPI | None = None) -> None:
        self.settings = settings
        self.catalog = catalog
        self.store_path = Path(store_path) if store_path else settings.home / "optimizer" / "telemetry.sqlite"
        self.telemetry_dir = settings.telemetry.dir
        self._plots: dict[tuple[str, int], tuple[bytes, bytes]] = {}
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        """The object the job endpoints are authorised on (the telemetry directory or store)."""
        if self.telemetry_dir:
            return self.telemetry_dir.rstrip("/") + "/"
        return str(self.store_path)

    def _store(self) -> TelemetryStore | None:
        if not self.store_path.is_file():
            return None
        store = TelemetryStore(":memory:")
        try:
            source = sqlite3.connect(f"file:{self.store_path}?mode=ro", uri=True)
            try:
                source.backup(store._db)  # a consistent snapshot, never a lock held on the file
            finally:
                source.close()
        except sqlite3.Error as exc:
            store.close()
            log.warning("telemetry store %s unreadable: %s", self.store_path, exc)
            return None
        return store

    def _dir_files(self) -> list[str]:
        if not self.telemetry_dir:
            return []
        from xtremehub import storage

        prefix = self.telemetry_dir.rstrip("/") + "/"
        try:
            return sorted(o.url for o in storage.list(prefix, settings=self.settings) if o.url.endswith(".jsonl"))
        except FileNotFoundError:
            return []

    def _dir_rows(self, url: str) -> list[TaskTelemetry]:
        from xtremehub import storage

        return read_jsonl(url, storage.get(url, settings=self.settings))

    def list_jobs(self) -> list[JobRow]:
        """Every job: the telemetry's in order of first submission (store first, then files not
        in it), then the catalog's (its latest :data:`MAX_CATALOG_JOBS`) not in the telemetry,
        oldest first. A job whose telemetry file names no function takes its record's."""
        rows = self._telemetry_jobs()
        if self.catalog is None:
            return rows
        records = {r.job_id: r for r in self.catalog.list_jobs(limit=MAX_CATALOG_JOBS)}
        rows = [
            dataclasses.replace(r, function=records[r.job_id].function)
            if r.function == "unknown" and r.job_id in records
            else r
            for r in rows
        ]
        known = {r.job_id for r in rows}
        return rows + [_row_of(record) for job_id, record in records.items() if job_id not in known]

    def page(self, *, limit: int, offset: int = 0) -> tuple[list[JobRow], int]:
        """Every job in :meth:`list_jobs`'s order, but all of the catalog's (oldest first), not
        only its latest :data:`MAX_CATALOG_JOBS`: the ``limit`` (1..10,000) from ``offset`` on, and
        how many jobs there are."""
        rows = self._telemetry_jobs()
        page = rows[offset : offset + limit]
        if self.catalog is None:
            return page, len(rows)
        known = [r.job_id for r in rows]
        records, more = self.catalog.job_page(limit=limit - len(page), offset=max(0, offset - len(rows)), exclude=known)
        page = [self._named(r) if r.function == "unknown" else r for r in page]
        return page + [_row_of(record) for record in records], len(rows) + more

    def _named(self, row: JobRow) -> JobRow:
        """A telemetry job whose file names no function, with its catalog record's, if any."""
        record = self.record(row.job_id)
        return dataclasses.replace(row, function=record.function) if record is not None else row

    def _telemetry_jobs(self) -> list[JobRow]:
        rows: list[JobRow] = []
        store = self._store()
        if store is not None:
            with store:
                rows = store.jobs()
        known = {r.job_id for r in rows}
        for url in self._dir_files():
            job_id = url.rsplit("/", 1)[-1].removesuffix(".jsonl")
            if job_id in known:
                continue
            try:
                calls = self._dir_rows(url)
            except TelemetryCorrupt as exc:
                log.warning("skipping %s", exc)
                continue
            with TelemetryStore() as mem:
                mem.add(calls, function="unknown")
                rows += mem.jobs()
        return rows

    def record(self, job_id: str) -> JobRecord | None:
        """The catalog's record of ``job_id``, or None."""
        if self.catalog is None:
            return None
        try:
            return self.catalog.get_job(job_id)
        except DatasetNotFound:
            return None

    def job(self, job_id: str) -> JobView:
        """One job from wherever it is known; :class:`DatasetNotFound` (kind job) when nowhere."""
        try:
            rows = self.rows(job_id)
        except DatasetNotFound:
            rows = []
        record = self.record(job_id)
        recorded, omitted = recorded_failures(record.telemetry) if record is not None else ([], 0)
        if rows:
            function = next((j.function for j in self._telemetry_jobs() if j.job_id == job_id), "unknown")
            stats, failures, omitted = JobStats.of(job_id, rows), _joined(rows, recorded), 0
        elif record is not None:
            function, stats, failures = record.function, _stats_of(job_id, record.telemetry), recorded
        else:
            raise DatasetNotFound(job_id, "job")
        if function == "unknown" and record is not None:
            function = record.function
        return JobView(job_id, function, rows, stats, record, failures, omitted)

    def rows(self, job_id: str) -> list[TaskTelemetry]:
        """A job's telemetry records in call order; :class:`DatasetNotFound` (kind job) when the
        telemetry does not know it."""
        store = self._store()
        if store is not None:
            with store:
                calls = store.calls(job_id)
            if calls:
                return [TaskTelemetry(**{k: c[k] for k in _TELEMETRY_FIELDS if k in c}) for c in calls]
        for url in self._dir_files():
            if url.rsplit("/", 1)[-1] == f"{job_id}.jsonl":
                return [r for r in self._dir_rows(url) if r.job_id == job_id]
        raise DatasetNotFound(job_id, "job")

    def plots(self, job_id: str) -> tuple[bytes, bytes]:
        """The timeline and histogram PNGs of a job (cached while its row count is unchanged);
        :class:`DatasetNotFound` when the telemetry does not know the job (nothing to draw)."""
        try:
            rows = self.rows(job_id)
        except DatasetNotFound:
            raise DatasetNotFound(job_id, "telemetry of job") from None
        key = (job_id, len(rows))
        with self._lock:
            if key in self._plots:
                return self._plots[key]
        pngs = _render(rows, job_id)
        with self._lock:
            if len(self._plots) > 64:
                self._plots.clear()
            self._plots[key] = pngs
        return pngs

    def close(self) -> None:
        with self._lock:
            self._plots.clear()


def _joined(rows: Sequence[TaskTelemetry], recorded: Sequence[CallFailure]) -> list[CallFailure]:
    """Every failed call of the telemetry, with the message and traceback recorded for it."""
    by_call = {f.call_id: f for f in recorded}
    out = []
    for r in rows:
        if r.status == "success":
            continue
        known = by_call.get(r.call_id)
        if known is None:
            out.append(CallFailure(r.call_id, r.error_type, worker=r.worker, attempts=r.attempts))
        else:
            error_type = r.error_type or known.error_type
            out.append(dataclasses.replace(known, error_type=error_type, worker=r.worker, attempts=r.attempts))
    return out


def _stats_of(job_id: str, telemetry: Mapping[str, Any]) -> JobStats:
    """The aggregates a job record's telemetry summary keeps (0 for those it lacks)."""
    values: dict[str, Any] = {"job_id": job_id}
    for f in dataclasses.fields(JobStats):
        if f.name == "job_id":
            continue
        kind = int if f.type in ("int", int) else float
        value = telemetry.get(f.name)
        values[f.name] = kind(value) if isinstance(value, int | float) and not isinstance(value, bool) else kind(0)
    return JobStats(**values)


def _row_of(record: JobRecord) -> JobRow:
    """A catalog job as the jobs list shows it (from its record's telemetry summary)."""
    stats = _stats_of(record.job_id, record.telemetry)
    return JobRow(
        job_id=record.job_id,
        function=record.function,
        format="",
        backend="",
        calls=stats.tasks,
        failures=stats.failures if stats.tasks else int(record.status == "failed"),
        input_bytes=stats.bytes_read,
        wall=stats.wall_seconds,
        total_duration=stats.total_seconds,
        max_peak_rss=stats.peak_rss,
    )


def _render(rows: Sequence[TaskTelemetry], name: str) -> tuple[bytes, bytes]:
    from xtremehub.compute.plots import plot_telemetry

    with tempfile.TemporaryDirectory(prefix="xhub-plots-") as tmp:
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:60] or "job"  # the name is also the file name
        timeline, histogram = plot_telemetry(rows, tmp + os.sep, name=safe)
        return Path(timeline).read_bytes(), Path(histogram).read_bytes()
