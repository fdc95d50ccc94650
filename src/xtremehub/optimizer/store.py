"""Telemetry store: job telemetry (JSON lines, one record per call) in a queryable SQLite table.

Why SQLite and not DuckDB: the table is small (one row per call; a busy month is a few
million rows), the queries are per-function filters and aggregates that SQLite answers
in milliseconds, and :mod:`sqlite3` ships with Python, so the optimizer adds no
dependency and the store file opens with any SQLite tool. DuckDB would win on wide
analytical scans over hundreds of millions of rows, which the optimizer never does.

The executor's JSON lines (``docs/telemetry.md``, schema ``"1"``) do not name the mapped
function nor the input size of each call. Both come from a sidecar ``<job_id>.meta.json``
(written by the planner, see :func:`write_job_meta`) or from the caller (``function=``);
without either, a call's input size is its ``bytes_read``.

Example:
    >>> from xtremehub.compute.telemetry import TaskTelemetry
    >>> store = TelemetryStore()
    >>> rows = [TaskTelemetry(job_id="a-M000", call_id=i, status="success", start=0.0, end=0.1 * (i + 1),
    ...                       bytes_read=1000 * (i + 1)) for i in range(3)]
    >>> store.add(rows, function="demo.scan")
    3
    >>> [(j.job_id, j.function, j.calls) for j in store.jobs()]
    [('a-M000', 'demo.scan', 3)]
    >>> store.observations("demo.scan").input_bytes.tolist()
    [1000.0, 2000.0, 3000.0]
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from xtremehub.compute.telemetry import TaskTelemetry
from xtremehub.errors import ConfigError, TelemetryCorrupt

__all__ = ["JobRow", "Observations", "RecordedLoad", "TelemetryStore", "read_jsonl", "write_job_meta"]

log = logging.getLogger(__name__)

_FIELDS = (
    "job_id",
    "call_id",
    "backend",
    "worker",
    "host",
    "status",
    "error_type",
    "submit",
    "start",
    "end",
    "cpu_user",
    "cpu_system",
    "peak_rss",
    "bytes_read",
    "bytes_written",
    "attempts",
    "result_size",
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS calls (
    source TEXT NOT NULL, line INTEGER NOT NULL, function TEXT NOT NULL, format TEXT NOT NULL,
    input_bytes INTEGER NOT NULL, records INTEGER,
    {", ".join(f'"{f}"' for f in _FIELDS)},
    duration REAL, cpu REAL,
    PRIMARY KEY (job_id, call_id)
);
CREATE INDEX IF NOT EXISTS calls_function ON calls(function, status);
"""
_COLUMNS = ", ".join(("source", "line", "function", "format", "input_bytes", "records", *(f'"{f}"' for f in _FIELDS)))
_MARKS = ", ".join("?" * (len(_FIELDS) + 8))
_INSERT = f"INSERT OR REPLACE INTO calls ({_COLUMNS}, duration, cpu) VALUES ({_MARKS})"  # noqa: S608 (constants)
_JOBS = """
    SELECT job_id, MIN(function), MIN(format), MIN(backend), COUNT(*),
           SUM(status != 'success'), SUM(input_bytes),
           COALESCE(MAX("end") - MIN(COALESCE(submit, start)), 0), COALESCE(SUM(duration), 0),
           MAX(peak_rss)
    FROM calls WHERE (? IS NULL OR function = ?)
    GROUP BY job_id ORDER BY MIN(COALESCE(submit, start)), job_id"""


@dataclass(frozen=True)
class RecordedLoad:
    """Recorded calls as the simulator's input: arrivals per window and a typical task time."""

    counts: npt.NDArray[np.int64]
    window_seconds: float
    task_seconds: float
    calls: int


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job as ``xhub telemetry ls`` lists it."""

    job_id: str
    function: str
    format: str
    backend: str
    calls: int
    failures: int
    input_bytes: int
    wall: float
    total_duration: float
    max_peak_rss: int

    def __str__(self) -> str:
        return (
            f"{self.job_id:<16} {self.function[:40]:<40} {self.backend:<7} {self.calls:>5} {self.failures:>4} "
            f"{self.input_bytes / 1e6:>10.1f} {self.wall:>8.2f} {self.total_duration:>9.2f} "
            f"{self.max_peak_rss / 2**20:>8.0f}"
        )

    HEADER = (
        f"{'job':<16} {'function':<40} {'backend':<7} {'calls':>5} {'fail':>4} {'input MB':>10} "
        f"{'wall s':>8} {'sum dur s':>9} {'peak MiB':>8}"
    )


@dataclass(frozen=True, slots=True)
class Observations:
    """Successful calls of one function as arrays (one entry per call), what the cost models fit."""

    function: str
    input_bytes: npt.NDArray[np.float64]
    records: npt.NDArray[np.float64] | None  # None unless every call knows its record count
    duration: npt.NDArray[np.float64]
    cpu: npt.NDArray[np.float64]
    peak_rss: npt.NDArray[np.float64]
    backend: tuple[str, ...]
    job: tuple[str, ...] = ()  # the job (map) of each call; empty when unknown
    worker: tuple[str, ...] = ()  # the worker that ran each call; empty when unknown

    def __len__(self) -> int:
        return len(self.duration)


def read_jsonl(path: str | Path, data: bytes | None = None) -> list[TaskTelemetry]:
    """Parse one telemetry JSON-lines file; an empty file or a bad line raises :class:`TelemetryCorrupt`.

    Example:
        >>> read_jsonl("job.jsonl", b'{"schema":"1","job_id":"j","call_id":0,"status":"success"}\\n')[0].job_id
        'j'
        >>> read_jsonl("job.jsonl", b'{"schema":"1"\\n')
        Traceback (most recent call last):
        ...
        xtremehub.errors.TelemetryCorrupt: job.jsonl:1: not JSON: Expecting ',' delimiter (column 14)
    """
    name = str(path)
    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise TelemetryCorrupt(name, 0, f"cannot read: {exc.strerror or exc}") from exc
    rows: list[TaskTelemetry] = []
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            detail = f"{exc.msg} (column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise TelemetryCorrupt(name, number, f"not JSON: {detail}") from exc
        if not isinstance(obj, dict):
            raise TelemetryCorrupt(name, number, f"expected a JSON object, got {type(obj).__name__}")
        try:
            rows.append(TaskTelemetry.from_dict(obj))
        except (ConfigError, TypeError) as exc:
            raise TelemetryCorrupt(name, number, str(exc)) from exc
    if not rows:
        raise TelemetryCorrupt(name, 0, "empty telemetry file (no records)")
    return rows


def write_job_meta(
    directory: str | Path,
    job_id: str,
    *,
    function: str,
    format: str = "",
    input_bytes: Sequence[int] | None = None,
    records: Sequence[int] | None = None,
    plan: dict[str, Any] | None = None,
) -> Path:
    """Write the sidecar ``<job_id>.meta.json`` that names a job's function and per-call input sizes."""
    path = Path(directory) / f"{job_id}.meta.json"
    meta = {"function": function, "format": format, "input_bytes": list(input_bytes or []), "plan": plan}
    if records is not None:
        meta["records"] = list(records)
    path.write_text(json.dumps(meta))
    return path


class TelemetryStore:
    """SQLite table ``calls`` of telemetry records, with the function and input size of each call.

    Args:
        path: database file (``":memory:"``, the default, keeps it in this process only).
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TelemetryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- loading --------------------------------------------------------------------------
    def load(self, path: str | Path, *, function: str | None = None, format: str | None = None) -> int:
        """Load one ``.jsonl`` file or every ``*.jsonl`` in a directory; returns rows loaded.

        ``function``/``format`` override the sidecar ``<job_id>.meta.json``; a file without
        either is loaded under function ``"unknown"``.
        """
        p = Path(path)
        if p.is_dir():
            files = sorted(p.glob("*.jsonl"))
            if not files:
                raise TelemetryCorrupt(str(p), 0, "no *.jsonl telemetry files in this directory")
        elif p.exists():
            files = [p]
        else:
            raise TelemetryCorrupt(str(p), 0, "no such file or directory")
        return sum(self._load_file(f, function, format) for f in files)

    def _load_file(self, path: Path, function: str | None, format: str | None) -> int:
        rows = read_jsonl(path)
        meta: dict[str, Any] = {}
        meta_path = path.with_name(path.name.removesuffix(".jsonl") + ".meta.json")
        if meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text())
            except json.JSONDecodeError as exc:
                raise TelemetryCorrupt(str(meta_path), exc.lineno, f"not JSON: {exc.msg}") from exc
            except UnicodeDecodeError as exc:
                raise TelemetryCorrupt(str(meta_path), 1, f"not UTF-8 text ({exc.reason})") from exc
            if not isinstance(meta, dict):
                raise TelemetryCorrupt(str(meta_path), 1, f"a JSON object was expected, not {type(meta).__name__}")
        return self.add(
            rows,
            function=function or meta.get("function") or "unknown",
            format=format or meta.get("format") or "",
            input_bytes=meta.get("input_bytes") or None,
            records=meta.get("records"),
            source=str(path),
        )

    def add(
        self,
        rows: Iterable[TaskTelemetry],
        *,
        function: str,
        format: str = "",
        input_bytes: Sequence[int] | None = None,
        records: Sequence[int] | None = None,
        source: str = "",
    ) -> int:
        """Insert records (a record already stored, same job and call, is replaced)."""
        values = []
        for i, r in enumerate(rows):
            size = input_bytes[r.call_id] if input_bytes is not None and r.call_id < len(input_bytes) else r.bytes_read
            recs = records[r.call_id] if records is not None and r.call_id < len(records) else None
            fields = tuple(getattr(r, f) for f in _FIELDS)
            values.append(
                (source, i + 1, function, format, int(size), recs, *fields, r.duration, r.cpu_user + r.cpu_system)
            )
        with self._db:
            self._db.executemany(_INSERT, values)
        return len(values)

    # -- queries --------------------------------------------------------------------------
    def functions(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT function FROM calls ORDER BY function")]

    def jobs(self, function: str | None = None) -> list[JobRow]:
        """One row per job, in order of first submission."""
        return [JobRow(*row) for row in self._db.execute(_JOBS, (function, function))]

    def calls(self, job_id: str) -> list[dict[str, Any]]:
        """Every stored call of a job, as dicts, in call order."""
        cur = self._db.execute("SELECT * FROM calls WHERE job_id = ? ORDER BY call_id", (job_id,))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def recorded_load(self, window_seconds: float, function: str | None = None) -> RecordedLoad:
        """The calls of the stored jobs (of ``function``) as arrivals per window, for the simulator.

        A call arrives at its ``submit`` time (its ``start`` when it has none); windows count
        from the first arrival. ``task_seconds`` is the median duration of the successful calls.

        Example:
            >>> from xtremehub.compute.telemetry import TaskTelemetry
            >>> store = TelemetryStore()
            >>> rows = [TaskTelemetry(job_id="j", call_id=i, status="success", submit=100.0 + 25 * i,
            ...                       start=100.0 + 25 * i, end=102.0 + 25 * i) for i in range(5)]
            >>> _ = store.add(rows, function="f")
            >>> load = store.recorded_load(60.0)
            >>> load.counts.tolist(), load.task_seconds
            ([3, 2], 2.0)
        """
        if window_seconds <= 0:
            raise ConfigError(f"window_seconds must be > 0, not {window_seconds}")
        rows = self._db.execute(
            "SELECT COALESCE(submit, start), duration, status FROM calls "
            "WHERE (? IS NULL OR function = ?) AND COALESCE(submit, start) IS NOT NULL",
            (function, function),
        ).fetchall()
        if not rows:
            raise ConfigError(f"no stored calls{f' of {function}' if function else ''} with a submit or start time")
        arrivals = np.array([r[0] for r in rows], dtype=np.float64)
        windows = ((arrivals - arrivals.min()) // window_seconds).astype(np.int64)
        counts = np.bincount(windows).astype(np.int64)
        durations = [r[1] for r in rows if r[2] == "success" and r[1] is not None]
        task_seconds = float(np.median(durations)) if durations else 0.0
        return RecordedLoad(counts, window_seconds, task_seconds, len(rows))

    def observations(self, function: str, backend: str | None = None) -> Observations:
        """Successful calls of ``function`` (optionally on one backend) with a measured duration."""
        sql = (
            "SELECT input_bytes, records, duration, cpu, peak_rss, backend, job_id, COALESCE(worker, '') FROM calls "
            "WHERE function = ? AND status = 'success' AND duration IS NOT NULL"
        )
        args: tuple[str, ...] = (function,)
        if backend:
            sql, args = sql + " AND backend = ?", (function, backend)
        rows = self._db.execute(sql + " ORDER BY job_id, call_id", args).fetchall()
        col = list(zip(*rows, strict=True)) if rows else [()] * 8
        recs = col[1]
        return Observations(
            function,
            np.asarray(col[0], dtype=np.float64),
            None if not rows or any(r is None for r in recs) else np.asarray(recs, dtype=np.float64),
            np.asarray(col[2], dtype=np.float64),
            np.asarray(col[3], dtype=np.float64),
            np.asarray(col[4], dtype=np.float64),
            tuple(col[5]),
            tuple(col[6]),
            tuple(col[7]),
        )
