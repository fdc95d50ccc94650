"""Task telemetry: one versioned record per finished call, and where records are written.

Each call's figures are measured on the worker by
:func:`~xtremehub.compute.task.run_calls` (so every backend reports them) and
completed by the executor with what only it knows (submit time, backend,
attempts). ``future.telemetry`` gives the record of one call,
``fexec.job_summary()`` a table of all of them. The schema is described field
by field in :class:`TaskTelemetry` and in ``docs/telemetry.md``; its version,
:data:`SCHEMA_VERSION`, is written into every JSON line and changes whenever a
field is renamed, removed or changes meaning (adding a field does not).

Example:
    >>> t = TaskTelemetry(job_id="a1b2c3-M000", call_id=0, backend="local", worker="local-0", host="h",
    ...                   status="success", submit=10.0, start=10.5, end=12.0, cpu_user=1.25)
    >>> t.duration, t.queued, t.retries
    (1.5, 0.5, 0)
    >>> TaskTelemetry.from_json(t.to_json()) == t
    True
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from xtremehub.errors import ConfigError

__all__ = ["SCHEMA_VERSION", "TaskTelemetry", "TelemetryWriter"]

log = logging.getLogger(__name__)

#: Version of the :class:`TaskTelemetry` schema (the ``schema`` field of each JSON line).
SCHEMA_VERSION = "1"

Status = Literal["success", "error"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskTelemetry:
    """What one call did, where and at what cost (schema version ``"1"``).

    Times are wall-clock epoch seconds (``time.time()``); ``submit`` is taken on
    the client, ``start`` and ``end`` on the worker, so across machines they are
    only as comparable as the clocks. A field the backend could not measure (a
    worker killed before it answered) is ``None`` or 0.

    Attributes:
        schema: schema version of this record, ``"1"``.
        job_id: the job (one ``map``, ``call_async`` or reduce step): ``<executor id>-M<n>``.
        call_id: index of the call in its job.
        backend: compute backend name (``local``, ``ray``, ``dask``, ``lithops``).
        worker: the worker that ran the call (for ``local``: ``local-<n>``); ``""`` if unknown.
        host: host name of that worker; ``""`` if unknown.
        status: ``"success"`` or ``"error"`` (after all retries).
        error_type: qualified exception type of a failure (``builtins.ValueError``), else ``""``.
        submit: when the executor submitted the call.
        start: when the worker started the last attempt (``None``: never ran to an answer).
        end: when that attempt ended (``None`` likewise).
        cpu_user: user CPU seconds the worker process spent in the call: measured per telemetry
            window (:func:`~xtremehub.compute.task.run_calls`), the call's own when it ran alone
            in its window (any call of 100 us or more that opened it), else the window's CPU
            split among its calls by wall time (calls of a few microseconds, run back to back).
        cpu_system: system CPU seconds likewise.
        peak_rss: peak resident set size in bytes during the call's telemetry window (on Linux
            the window's own peak: the high-water mark is reset when a window opens, so the
            call's own peak when it ran alone, an upper bound of it otherwise; elsewhere the
            worker process's peak so far, an upper bound).
        bytes_read: bytes read through the storage layer (any store) during the call.
        bytes_written: bytes written through the storage layer during the call.
        attempts: how many times the call ran (1 without retries).
        result_size: size in bytes of the pickled result (0 for a failure).
    """

    schema: str = SCHEMA_VERSION
    job_id: str
    call_id: int
    backend: str = ""
    worker: str = ""
    host: str = ""
    status: Status
    error_type: str = ""
    submit: float | None = None
    start: float | None = None
    end: float | None = None
    cpu_user: float = 0.0
    cpu_system: float = 0.0
    peak_rss: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    attempts: int = 1
    result_size: int = 0

    @property
    def duration(self) -> float | None:
        """Run time of the last attempt in seconds (``end - start``)."""
        return None if self.start is None or self.end is None else self.end - self.start

    @property
    def queued(self) -> float | None:
        """Seconds between submission and the start of the last attempt."""
        return None if self.start is None or self.submit is None else self.start - self.submit

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)

    def to_dict(self) -> dict[str, Any]:
        """The record as a plain dict (the JSON line's fields, ``schema`` first)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """One JSON line (no newline)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskTelemetry:
        """Read a record back; refuses another schema version or unknown fields."""
        if data.get("schema") != SCHEMA_VERSION:
            raise ConfigError(
                f"telemetry record has schema {data.get('schema')!r}; this version reads {SCHEMA_VERSION!r}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"telemetry record has unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**data)

    @classmethod
    def from_json(cls, line: str) -> TaskTelemetry:
        return cls.from_dict(json.loads(line))


def to_jsonl(rows: Sequence[TaskTelemetry]) -> bytes:
    """Records as JSON lines (one per task, each ending in a newline).

    Example:
        >>> to_jsonl([TaskTelemetry(job_id="j", call_id=0, status="success")])[:13]
        b'{"schema":"1"'
    """
    return "".join(r.to_json() + "\n" for r in rows).encode()


class TelemetryWriter:
    """Writes each job's records as one JSON-lines object ``<location>/<job_id>.jsonl`` once the job is done.

    ``location`` is a local directory or any storage URL prefix (``s3://bucket/telemetry/``).
    Writes run in one background thread, off the executor's dispatcher; :meth:`flush`
    waits for them (the executor calls it on ``close``).
    """

    def __init__(self, location: str, settings: Any = None) -> None:
        self.location = location.rstrip("/")
        self._settings = settings
        self._lock = threading.Lock()
        self._expected: dict[str, int] = {}
        self._rows: dict[str, list[TaskTelemetry]] = {}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="xhub-telemetry")
        self._writes: list[Future[None]] = []

    def url_for(self, job_id: str) -> str:
        return f"{self.location}/{job_id}.jsonl"

    def expect(self, job_id: str, calls: int) -> None:
        """Announce ``calls`` more calls of ``job_id`` (the job is written when all are recorded)."""
        with self._lock:
            self._expected[job_id] = self._expected.get(job_id, 0) + calls

    def record(self, row: TaskTelemetry) -> None:
        with self._lock:
            rows = self._rows.setdefault(row.job_id, [])
            rows.append(row)
            if len(rows) < self._expected.get(row.job_id, 0):
                return
            del self._rows[row.job_id]
            self._expected.pop(row.job_id, None)
            self._writes.append(self._pool.submit(self._write, row.job_id, sorted(rows, key=lambda r: r.call_id)))

    def _write(self, job_id: str, rows: list[TaskTelemetry]) -> None:
        from xtremehub import storage

        try:
            storage.put(self.url_for(job_id), to_jsonl(rows), settings=self._settings)
        except Exception:  # telemetry must never fail the user's job
            log.exception("could not write telemetry of job %s to %s", job_id, self.url_for(job_id))

    def flush(self) -> None:
        """Write what is pending (jobs cut short by ``close`` included) and wait for all writes."""
        with self._lock:
            for job_id, rows in self._rows.items():
                self._writes.append(self._pool.submit(self._write, job_id, sorted(rows, key=lambda r: r.call_id)))
            self._rows.clear()
            self._expected.clear()
            writes, self._writes = self._writes, []
        for w in writes:
            w.result()

    def close(self) -> None:
        self.flush()
        self._pool.shutdown(wait=True)
