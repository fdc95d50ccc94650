"""``fexec.job_summary()``: the telemetry of finished calls as a table, with per-job aggregates.

Example:
    >>> rows = [
    ...     TaskTelemetry(job_id="x-M000", call_id=i, status="success", submit=0.0, start=1.0, end=1.0 + i,
    ...                   cpu_user=0.5, bytes_read=1000, peak_rss=2**20)
    ...     for i in range(1, 4)
    ... ]
    >>> summary = JobSummary(rows)
    >>> job = summary.jobs()[0]
    >>> job.tasks, job.failures, job.total_seconds, job.mean_seconds, job.bytes_read
    (3, 0, 6.0, 2.0, 3000)
    >>> print(str(summary).splitlines()[0].split()[:4])
    ['job', 'tasks', 'failed', 'retries']
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

from xtremehub.compute.telemetry import TaskTelemetry, to_jsonl
from xtremehub.config import Settings
from xtremehub.errors import MissingDependency

__all__ = ["JobStats", "JobSummary", "format_bytes"]


def format_bytes(n: float) -> str:
    """A byte count for people.

    Example:
        >>> format_bytes(0), format_bytes(1536), format_bytes(3.5e9)
        ('0 B', '1.5 KiB', '3.3 GiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class JobStats:
    """Aggregates of one job's calls (``wall_seconds``: first submit to last end)."""

    job_id: str
    tasks: int
    failures: int
    retries: int
    wall_seconds: float
    total_seconds: float
    mean_seconds: float
    cpu_seconds: float
    bytes_read: int
    bytes_written: int
    peak_rss: int
    workers: int

    @classmethod
    def of(cls, job_id: str, rows: Sequence[TaskTelemetry]) -> JobStats:
        durations = [d for d in (r.duration for r in rows) if d is not None]
        starts = [t for r in rows for t in (r.submit, r.start) if t is not None]
        ends = [r.end for r in rows if r.end is not None]
        return cls(
            job_id=job_id,
            tasks=len(rows),
            failures=sum(r.status != "success" for r in rows),
            retries=sum(r.retries for r in rows),
            wall_seconds=max(ends) - min(starts) if ends and starts else 0.0,
            total_seconds=sum(durations),
            mean_seconds=statistics.fmean(durations) if durations else 0.0,
            cpu_seconds=sum(r.cpu_user + r.cpu_system for r in rows),
            bytes_read=sum(r.bytes_read for r in rows),
            bytes_written=sum(r.bytes_written for r in rows),
            peak_rss=max((r.peak_rss for r in rows), default=0),
            workers=len({(r.host, r.worker) for r in rows if r.worker}),
        )


_COLUMNS = (
    ("job", 14),
    ("tasks", 6),
    ("failed", 7),
    ("retries", 8),
    ("wall s", 8),
    ("total s", 9),
    ("mean s", 8),
    ("CPU s", 8),
    ("read", 11),
    ("written", 11),
    ("peak RSS", 11),
    ("workers", 8),
)


class JobSummary(Sequence[TaskTelemetry]):
    """Telemetry rows (one per finished call, in job then call order) with per-job aggregates.

    ``str(summary)`` is a readable table of :meth:`jobs`; :meth:`to_pandas` gives a
    DataFrame of the rows (one column per :class:`TaskTelemetry` field plus
    ``duration`` and ``queued``).
    """

    def __init__(self, rows: Sequence[TaskTelemetry]) -> None:
        self.rows: tuple[TaskTelemetry, ...] = tuple(sorted(rows, key=lambda r: (r.job_id, r.call_id)))

    @overload
    def __getitem__(self, index: int) -> TaskTelemetry: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[TaskTelemetry]: ...
    def __getitem__(self, index: int | slice) -> TaskTelemetry | Sequence[TaskTelemetry]:
        return self.rows[index]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[TaskTelemetry]:
        return iter(self.rows)

    def __repr__(self) -> str:
        return f"<JobSummary {len(self.rows)} tasks in {len(self.jobs())} jobs>"

    def jobs(self) -> list[JobStats]:
        """Aggregates per job, in job order."""
        by_job: dict[str, list[TaskTelemetry]] = {}
        for r in self.rows:
            by_job.setdefault(r.job_id, []).append(r)
        return [JobStats.of(job_id, rows) for job_id, rows in by_job.items()]

    def total(self) -> JobStats:
        """Aggregates over all rows (``job_id`` is ``"all"``)."""
        return JobStats.of("all", self.rows)

    def __str__(self) -> str:
        header = " ".join(f"{name:<{w}}" if i == 0 else f"{name:>{w}}" for i, (name, w) in enumerate(_COLUMNS))
        lines = [header]
        jobs = self.jobs()
        for j in [*jobs, self.total()] if len(jobs) > 1 else jobs:
            cells = (
                j.job_id,
                str(j.tasks),
                str(j.failures),
                str(j.retries),
                f"{j.wall_seconds:.3f}",
                f"{j.total_seconds:.3f}",
                f"{j.mean_seconds:.4f}",
                f"{j.cpu_seconds:.3f}",
                format_bytes(j.bytes_read),
                format_bytes(j.bytes_written),
                format_bytes(j.peak_rss),
                str(j.workers),
            )
            lines.append(
                " ".join(
                    f"{c:<{w}}" if i == 0 else f"{c:>{w}}"
                    for i, (c, (_, w)) in enumerate(zip(cells, _COLUMNS, strict=True))
                )
            )
        if not jobs:
            lines.append("(no finished calls)")
        return "\n".join(lines)

    def to_records(self) -> list[dict[str, Any]]:
        """The rows as dicts, with the derived ``duration`` and ``queued`` seconds."""
        return [{**r.to_dict(), "duration": r.duration, "queued": r.queued} for r in self.rows]

    def to_pandas(self) -> Any:
        """A :class:`pandas.DataFrame`, one row per call (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise MissingDependency(
                "JobSummary.to_pandas() needs pandas: pip install pandas (or xtremehub[telemetry])"
            ) from exc
        columns = [*TaskTelemetry.__dataclass_fields__, "duration", "queued"]
        return pd.DataFrame.from_records(self.to_records(), columns=columns)

    def to_jsonl(self) -> bytes:
        """The rows as JSON lines, each with its schema version."""
        return to_jsonl(self.rows)

    def write_jsonl(self, url: str, *, settings: Settings | None = None) -> str:
        """Write :meth:`to_jsonl` to a local path or storage URL; returns it."""
        from xtremehub import storage

        storage.put(url, self.to_jsonl(), settings=settings)
        return url
