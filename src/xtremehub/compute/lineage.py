"""Lineage of executor jobs: what a job read (which slices) and which objects it wrote.

The executor knows nothing of the catalog: it describes each finished job as a
:class:`JobLineage` and hands it to a :class:`LineageSink`. The catalog implements the sink
(:class:`xtremehub.catalog.lineage.CatalogLineage`): it registers the inputs and the outputs
(as ``derived`` datasets) and records the job. ``FunctionExecutor(catalog=...)`` takes a sink,
or any object the ``xtremehub.lineage_sinks`` registry can adapt (a catalog), and
``[catalog] lineage = true`` (``XHUB_CATALOG_LINEAGE=1``) makes every executor record to the
configured catalog.

What a job read is found on the driver, in the calls' arguments: connector slices
(FASTQ/VCF record ranges, COG windows, point-cloud chunk runs, imzML spectra, stream segment
ranges, object parts) and plain object URLs, each as a :class:`ReadRef` (URL, a readable
slice descriptor, byte ranges). What it wrote is listed on the workers: every object put
through XtremeHub storage by the thread running a call (see
:func:`xtremehub.storage.iostats.start_writes`); URLs also passed as arguments are outputs,
not inputs, when the job wrote them.

Example:
    >>> from xtremehub.compute.partitioner import ObjectPart
    >>> reads_of([((ObjectPart("s3://lab/a.csv", 0, 2, (0, 99), 200),), {})])
    (ReadRef(url='s3://lab/a.csv', slices=('part 0/2',), byte_ranges=((0, 100),), version=None),)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from xtremehub.plugins import Registry

__all__ = [
    "LINEAGE_SINKS",
    "JobLineage",
    "LineageSink",
    "LineageTracer",
    "ReadRef",
    "as_sink",
    "lineage_tracer",
    "reads_of",
]

log = logging.getLogger(__name__)

#: Adapters that turn a catalog (or anything else) into a :class:`LineageSink`: ``factory(obj)``.
LINEAGE_SINKS: Registry[Callable[..., LineageSink]] = Registry(
    "lineage sink",
    "xtremehub.lineage_sinks",
    {"catalog": "xtremehub.catalog.lineage:CatalogLineage", "settings": "xtremehub.catalog.lineage:from_settings"},
)

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")
#: At most this many slice descriptors are kept per input object (the count is always kept).
MAX_SLICES = 256


@dataclass(frozen=True)
class ReadRef:
    """An object a job read: its URL, which slices of it, and their byte ranges (empty: all of it).

    ``version``: the content version read, when the reader knows it (a stream's cut, as
    :meth:`~xtremehub.streams.controller.model.StreamCut.to_json`); the catalog records the
    input against that version.
    """

    url: str
    slices: tuple[str, ...] = ()
    byte_ranges: tuple[tuple[int, int], ...] = ()
    version: str | None = None


@dataclass(frozen=True)
class JobLineage:
    """One finished job, as lineage records it.

    Attributes:
        job_id: the executor's job id.
        function: ``module:qualname`` of the mapped function.
        owner: who ran it.
        started, finished: UTC times (submission, and when the last call settled).
        status: ``succeeded`` when every call did, else ``failed``.
        code_measurement: :func:`xtremehub.security.attest.measure` of the function, when it could be taken.
        parameters: JSON-able parameters (call count, timeout, chunk size, constant arguments).
        telemetry: the job's telemetry aggregates (calls, seconds, CPU, bytes read/written, peak RSS)
            and, when calls failed, the first of them with their remote tracebacks
            (``failed_calls``, ``failed_calls_omitted``: see :mod:`xtremehub.compute.failures`).
        reads: the objects read, by URL, with the slices.
        writes: ``(url, size)`` of the objects written.
    """

    job_id: str
    function: str
    owner: str
    started: datetime
    finished: datetime
    status: Literal["succeeded", "failed"]
    code_measurement: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    telemetry: Mapping[str, Any] = field(default_factory=dict)
    reads: tuple[ReadRef, ...] = ()
    writes: tuple[tuple[str, int], ...] = ()


@runtime_checkable
class LineageSink(Protocol):
    """Where the executor sends the lineage of its finished jobs."""

    def record_lineage(self, job: JobLineage) -> Any: ...


def as_sink(target: object) -> LineageSink:
    """``target`` itself when it is a sink, else the ``catalog`` adapter of :data:`LINEAGE_SINKS` around it."""
    if isinstance(target, LineageSink):
        return target
    return LINEAGE_SINKS.load("catalog")(target)


def _describe(obj: Any) -> tuple[str, str, tuple[tuple[int, int], ...]] | None:
    """``(url, slice descriptor, byte ranges)`` of a slice-like argument, or None (duck-typed)."""
    kind = type(obj).__name__
    url = getattr(obj, "url", None)
    if kind == "ObjectPart":
        a, b = obj.data_byte_range
        return str(url), f"part {obj.part}/{obj.total_parts}", ((int(a), int(b) + 1),)
    if kind == "StreamSlice":
        scope, stream = str(obj.segment).split("/")[:2]
        return (
            f"xhub-stream://{scope}/{stream}",
            f"segment {obj.segment} [{obj.start}:{obj.end}]",
            ((int(obj.start), int(obj.end)),),
        )
    if kind == "ImzMLSlice":
        indices = obj.indices
        desc = f"spectra {int(indices[0])}-{int(indices[-1])} ({len(indices)})" if len(indices) else "no spectra"
        return str(obj.ibd_url), desc, ()
    if not isinstance(url, str):
        return None
    if hasattr(obj, "first") and hasattr(obj, "count"):  # record slices (FASTQ, VCF, FASTA lines)
        return url, f"records {obj.first}-{obj.first + obj.count}", ()
    if hasattr(obj, "blocks") and hasattr(obj, "level"):  # COG windows
        level = getattr(obj.level, "level", obj.level)
        desc = f"level {level} window rows {obj.row}-{obj.row + obj.height} cols {obj.col}-{obj.col + obj.width}"
        spans = [(int(o), int(o) + int(n)) for _, o, n in obj.blocks if n]
        return url, desc, ((min(a for a, _ in spans), max(b for _, b in spans)),) if spans else ()
    if hasattr(obj, "runs"):  # point-cloud chunk runs
        points = sum(int(r[2]) for r in obj.runs)
        spans = [(int(o), int(o) + int(n)) for o, n, _ in obj.runs]
        return url, f"{points} points in {len(spans)} runs", tuple(spans[:MAX_SLICES])
    if hasattr(obj, "start") and hasattr(obj, "end"):  # text/CSV byte slices
        return url, f"bytes {obj.start}-{obj.end}", ((int(obj.start), int(obj.end)),)
    if hasattr(obj, "iter_chunks"):  # another DataSlice with a URL
        return url, kind, ()
    return None


def _walk(value: Any, depth: int = 0) -> Iterable[Any]:
    yield value
    if depth < 2 and isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item, depth + 1)
    elif depth < 2 and isinstance(value, dict):
        for item in value.values():
            yield from _walk(item, depth + 1)


def reads_of(arg_sets: Sequence[tuple[tuple[Any, ...], Mapping[str, Any]]]) -> tuple[ReadRef, ...]:
    """The objects the calls' arguments point at: slices (with descriptors and byte ranges) and URLs."""
    found: dict[str, tuple[list[str], list[tuple[int, int]]]] = {}
    for args, kwargs in arg_sets:
        for value in (*args, *kwargs.values()):
            for item in _walk(value):
                described = _describe(item)
                if described is not None:
                    url, desc, ranges = described
                    slices, spans = found.setdefault(url, ([], []))
                    slices.append(desc)
                    spans.extend(ranges)
                elif isinstance(item, str) and _URL.match(item):
                    found.setdefault(item, ([], []))
    return tuple(
        ReadRef(url, tuple(slices[:MAX_SLICES]), tuple(sorted(spans)[:MAX_SLICES]))
        for url, (slices, spans) in found.items()
    )


def _function_name(func: Callable[..., Any]) -> str:
    target = getattr(func, "__wrapped__", func)
    return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', type(target).__name__)}"


def _measure(func: Callable[..., Any]) -> str | None:
    """The function's code measurement (``sha256:``), or None when it cannot be taken (a builtin, a lambda)."""
    try:
        from xtremehub.security.attest import measure

        return measure(getattr(func, "__wrapped__", func))
    except Exception as exc:  # lineage never fails a job over its measurement
        log.debug("no code measurement of %r: %s", func, exc)
        return None


_SCALARS = (str, int, float, bool, type(None))


def _parameters(job: Any, arg_sets: Sequence[tuple[tuple[Any, ...], Mapping[str, Any]]]) -> dict[str, Any]:
    """Call count, timeout, job options and the keyword arguments every call shares (JSON scalars)."""
    params: dict[str, Any] = {"calls": len(arg_sets), "timeout": job.timeout}
    params.update({k: v for k, v in job.extra.items() if isinstance(v, _SCALARS) and v is not None})
    if arg_sets:
        first = arg_sets[0][1]
        shared = {k: v for k, v in first.items() if isinstance(v, _SCALARS) and len(str(v)) < 200}
        for _, kwargs in arg_sets[1:]:
            shared = {k: v for k, v in shared.items() if kwargs.get(k, object()) == v}
        params.update({f"arg.{k}": v for k, v in shared.items() if isinstance(v, _SCALARS)})
    return params


@dataclass
class _Trace:
    job: Any
    function: str
    measurement: str | None
    parameters: dict[str, Any]
    reads: tuple[ReadRef, ...]
    started: datetime
    futures: list[Any]
    remaining: int
    after: str | None = None  # a chained job (map_reduce's reducer): the job whose results it takes
    inherited: tuple[ReadRef, ...] = ()  # that job's reads, for when its results name no object


class LineageTracer:
    """The executor's side of lineage: traces each submitted job and, once all its calls have
    settled, sends its :class:`JobLineage` to the sink (on :meth:`flush`, from the caller's thread).

    Args:
        sink: where finished jobs go.
        owner: who runs the jobs.
        measure_code: take :func:`xtremehub.security.attest.measure` of each job's function.
    """

    def __init__(self, sink: LineageSink, owner: str, *, measure_code: bool = True, owns_sink: bool = False) -> None:
        import threading

        self.sink, self.owner, self.measure_code = sink, owner, measure_code
        self._owns_sink = owns_sink  # opened from the settings: closed with the executor
        self._closed = False
        self._traces: dict[str, _Trace] = {}
        self._ready: list[str] = []
        # chained jobs: the arguments each call was built with (known only once the upstream job is done)
        self._late: dict[str, list[tuple[tuple[Any, ...], Mapping[str, Any]]]] = {}
        # upstream job id -> its recorded reads, kept for the chained job that inherits them
        self._upstream: dict[str, tuple[ReadRef, ...] | None] = {}
        self._lock = threading.Lock()
        #: what the sink returned for each recorded job, in order (a catalog: its JobRecord)
        self.records: list[Any] = []

    def submitted(
        self,
        job: Any,
        arg_sets: Sequence[tuple[tuple[Any, ...], Mapping[str, Any]]],
        futures: Sequence[Any],
        *,
        after: str | None = None,
    ) -> None:
        """Trace ``job`` (its calls' ``arg_sets`` were submitted as ``futures``).

        ``after``: ``job`` is chained on the results of that (traced) job, as ``map_reduce``'s
        reducer is: its calls' arguments are only known once those results are, so ``arg_sets``
        is empty and each call reports its arguments through :meth:`chained_call` (announce the
        job first with :meth:`expect`, before any of its calls can be built).
        """
        from datetime import UTC

        trace = _Trace(
            job,
            _function_name(job.func),
            _measure(job.func) if self.measure_code else None,
            _parameters(job, arg_sets),
            reads_of(arg_sets),
            datetime.now(tz=UTC),
            list(futures),
            len(futures),
            after,
        )
        with self._lock:
            self._traces[job.job_id] = trace
        for future in futures:
            future.add_done_callback(lambda _f, job_id=job.job_id: self._settled(job_id))

    def expect(self, job_id: str, *, after: str) -> None:
        """Announce a job chained on ``after``'s results (see :meth:`submitted`)."""
        with self._lock:
            self._late.setdefault(job_id, [])
            self._upstream.setdefault(after, None)

    def chained_call(self, job_id: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """The arguments one call of an expected chained job was built with (ignored for other jobs)."""
        with self._lock:
            calls = self._late.get(job_id)
            if calls is not None:
                calls.append((args, kwargs))

    def _settled(self, job_id: str) -> None:
        with self._lock:
            trace = self._traces.get(job_id)
            if trace is None or trace.remaining <= 0:  # already found settled by flush (and maybe sent)
                return
            trace.remaining -= 1
            if trace.remaining == 0:
                self._ready.append(job_id)

    def close(self) -> None:
        """Close the sink when it was opened for this tracer (the configured catalog); then later
        flushes record nothing into it (jobs still running when the executor closed without waiting).
        A sink given by the caller stays open and keeps receiving."""
        if not self._owns_sink:
            return
        with self._lock:
            if self._closed:
                return
            self._closed = True
            unsent = len(self._traces)
        if unsent:
            log.warning("lineage of %d job(s) still running at close is not recorded", unsent)
        close = getattr(self.sink, "close", None)
        if close is not None:
            close()

    def flush(self) -> list[Any]:
        """Send every job whose calls have all settled to the sink; returns what the sink returned."""
        with self._lock:
            if self._closed:
                return []
            # done-callbacks run after the waiters wake: a job whose futures are all done is
            # settled even when its callbacks have not run yet (get_result then sees its lineage)
            for job_id, trace in self._traces.items():
                if trace.remaining > 0 and all(f.done for f in trace.futures):
                    trace.remaining = 0
                    self._ready.append(job_id)
            ready, self._ready = self._ready, []
            traces = [self._traces.pop(job_id) for job_id in ready]
        out = []
        for trace in traces:
            if trace.after is not None:
                self._resolve_chained(trace)
            lineage = self._lineage_of(trace)
            with self._lock:
                if lineage.job_id in self._upstream:
                    self._upstream[lineage.job_id] = lineage.reads
            try:
                out.append(self.sink.record_lineage(lineage))
            except Exception:  # the job's results stay deliverable; the lineage failure is logged
                log.exception("lineage of job %s could not be recorded", lineage.job_id)
        self.records += out
        return out

    def _resolve_chained(self, trace: _Trace) -> None:
        """A chained job's reads and parameters, now that its calls' arguments are known.

        It read what its arguments name (the objects the upstream job's results point at, its
        intermediate outputs); when they name none (in-memory results), it inherits the upstream
        job's inputs, so its outputs still trace back to the data. ``after_job`` names the upstream job.
        """
        with self._lock:
            late = self._late.pop(trace.job.job_id, [])
            upstream = self._upstream.pop(str(trace.after), None) or ()
        trace.reads, trace.inherited = reads_of(late), upstream
        trace.parameters = {**_parameters(trace.job, late), "calls": len(trace.futures), "after_job": trace.after}

    def _lineage_of(self, trace: _Trace) -> JobLineage:
        from dataclasses import asdict
        from datetime import UTC

        from xtremehub.compute.failures import OMITTED_KEY, TELEMETRY_KEY, failures_of
        from xtremehub.compute.summary import JobStats

        rows = [t for t in (f.telemetry for f in trace.futures) if t is not None]
        stats = asdict(JobStats.of(trace.job.job_id, rows)) if rows else {}
        failures, omitted = failures_of(trace.futures)
        if failures:
            stats[TELEMETRY_KEY] = [f.to_json() for f in failures]
            stats[OMITTED_KEY] = omitted
        ends = [t.end for t in rows if t.end]
        finished = datetime.fromtimestamp(max(ends), tz=UTC) if ends else datetime.now(tz=UTC)
        writes: dict[str, int] = {}
        for f in trace.futures:
            outcome = getattr(f, "_outcome", None)
            for url, size in getattr(outcome, "written", ()) or ():
                writes[url] = size
        failed = any(f._exception is not None for f in trace.futures)
        reads = tuple(r for r in trace.reads if not _is_output(r.url, writes)) or trace.inherited
        return JobLineage(
            job_id=trace.job.job_id,
            function=trace.function,
            owner=self.owner,
            started=trace.started,
            finished=max(finished, trace.started),
            status="failed" if failed else "succeeded",
            code_measurement=trace.measurement,
            parameters=trace.parameters,
            telemetry=stats,
            reads=reads,
            writes=tuple(writes.items()),
        )


def _is_output(url: str, writes: Mapping[str, int]) -> bool:
    """Whether an argument URL names an output (an object the job wrote, or a prefix of one)."""

    def plain(u: str) -> str:
        return u[len("file://") :] if u.startswith("file://") else u

    target = plain(url).rstrip("/")
    return any(plain(w) == target or plain(w).startswith(target + "/") for w in writes)


def lineage_tracer(catalog: object | None, owner: str | None, settings: Any) -> LineageTracer | None:
    """The executor's tracer: for ``catalog`` (a sink or a catalog), else the configured catalog when
    ``settings.catalog.lineage`` is on, else None (no lineage)."""
    import getpass

    if catalog is not None:
        return LineageTracer(as_sink(catalog), owner or getpass.getuser())
    if getattr(getattr(settings, "catalog", None), "lineage", False):
        return LineageTracer(LINEAGE_SINKS.load("settings")(settings), owner or getpass.getuser(), owns_sink=True)
    return None
