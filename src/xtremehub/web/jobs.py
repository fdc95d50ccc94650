"""Where the API finds jobs: the optimizer's telemetry store and the telemetry directory.

Jobs come from two places, merged: the optimizer's SQLite telemetry store
(:class:`~xtremehub.optimizer.store.TelemetryStore`, ``<home>/optimizer/telemetry.sqlite`` by
default, where ``make demo`` records its jobs) and the executor's JSON-lines files
(``<job_id>.jsonl``) under ``settings.telemetry.dir`` when one is configured. A job's rows
are :class:`~xtremehub.compute.telemetry.TaskTelemetry` records, so the summary
(:class:`~xtremehub.compute.summary.JobStats`) and the plots
(:func:`~xtremehub.compute.plots.plot_telemetry`) are the executor's own.

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
from collections.abc import Sequence
from pathlib import Path

from xtremehub.compute.summary import JobStats
from xtremehub.compute.telemetry import TaskTelemetry
from xtremehub.config import Settings
from xtremehub.errors import DatasetNotFound, TelemetryCorrupt
from xtremehub.optimizer.store import JobRow, TelemetryStore, read_jsonl

__all__ = ["JobsSource"]

log = logging.getLogger(__name__)

_TELEMETRY_FIELDS = tuple(f.name for f in dataclasses.fields(TaskTelemetry))


class JobsSource:
    """Jobs and their telemetry rows, read from the telemetry store and directory on each call.

    Args:
        settings: ``home`` locates the default store, ``telemetry.dir`` the JSON-lines files.
        store_path: the telemetry store (None: ``<home>/optimizer/telemetry.sqlite``).
    """

    def __init__(self, settings: Settings, store_path: str | None = None) -> None:
        self.settings = settings
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
        """Every job, in order of first submission (store first, then files not in it)."""
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

    def rows(self, job_id: str) -> list[TaskTelemetry]:
        """A job's telemetry records in call order; :class:`DatasetNotFound` (kind job) when unknown."""
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

    def function(self, job_id: str) -> str:
        return next((j.function for j in self.list_jobs() if j.job_id == job_id), "unknown")

    def summary(self, job_id: str) -> JobStats:
        return JobStats.of(job_id, self.rows(job_id))

    def plots(self, job_id: str) -> tuple[bytes, bytes]:
        """The timeline and histogram PNGs of a job (cached while its row count is unchanged)."""
        rows = self.rows(job_id)
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


def _render(rows: Sequence[TaskTelemetry], name: str) -> tuple[bytes, bytes]:
    from xtremehub.compute.plots import plot_telemetry

    with tempfile.TemporaryDirectory(prefix="xhub-plots-") as tmp:
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:60] or "job"  # the name is also the file name
        timeline, histogram = plot_telemetry(rows, tmp + os.sep, name=safe)
        return Path(timeline).read_bytes(), Path(histogram).read_bytes()
