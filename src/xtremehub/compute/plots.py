"""``fexec.plot()``: a timeline and a duration histogram of finished calls, as PNG files.

Rendered with matplotlib's Agg canvas directly (no pyplot, no display, no global
figure state), then written through the storage layer, so ``dst`` may be a local
path or any storage URL.

Example:
    >>> import tempfile
    >>> from xtremehub.compute.telemetry import TaskTelemetry
    >>> rows = [TaskTelemetry(job_id="j", call_id=i, worker=f"w{i % 2}", status="success",
    ...                       submit=0.0, start=0.1 * i, end=0.1 * i + 0.3) for i in range(8)]
    >>> paths = plot_telemetry(rows, tempfile.mkdtemp() + "/job")
    >>> [p.rsplit("_", 1)[1] for p in paths]
    ['timeline.png', 'histogram.png']
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

from xtremehub.compute.telemetry import TaskTelemetry
from xtremehub.config import Settings

__all__ = ["plot_paths", "plot_telemetry"]


def plot_paths(dst: str | os.PathLike[str], name: str) -> tuple[str, str]:
    """Where the two PNGs go: ``<dir>/<name>_timeline.png`` for a directory (an existing
    one, or a path ending in ``/``), else ``<dst>_timeline.png``; likewise ``_histogram.png``.

    Example:
        >>> plot_paths("s3://b/plots/", "abc123")
        ('s3://b/plots/abc123_timeline.png', 's3://b/plots/abc123_histogram.png')
        >>> plot_paths("/tmp/run7", "abc123")
        ('/tmp/run7_timeline.png', '/tmp/run7_histogram.png')
    """
    text = os.fspath(dst)
    if text.endswith("/") or ("://" not in text and os.path.isdir(text)):
        text = text.rstrip("/") + "/" + name
    elif "://" not in text:
        text = os.path.abspath(os.path.expanduser(text))
    return f"{text}_timeline.png", f"{text}_histogram.png"


def _png(fig: object) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)  # type: ignore[attr-defined]
    return buf.getvalue()


def plot_telemetry(
    rows: Sequence[TaskTelemetry],
    dst: str | os.PathLike[str],
    *,
    name: str = "xhub",
    settings: Settings | None = None,
    figsize: tuple[float, float] = (10.0, 6.0),
) -> tuple[str, str]:
    """Write the timeline and histogram PNGs of ``rows`` (see :func:`plot_paths`); returns their paths."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from xtremehub import storage

    # (row, start, end) of the calls that ran to an answer
    ran = [(r, r.start, r.end) for r in rows if r.start is not None and r.end is not None]
    timeline_url, histogram_url = plot_paths(dst, name)
    t0 = min(min(s, r.submit if r.submit is not None else s) for r, s, _ in ran) if ran else 0.0

    # Timeline: top, one line per call (grey while queued, coloured by worker while running);
    # bottom, one lane per worker with its calls as bars.
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    ax_calls, ax_workers = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    workers = sorted({r.worker or "?" for r, _, _ in ran})
    colour = {w: f"C{i % 10}" for i, w in enumerate(workers)}
    ordered = sorted(ran, key=lambda x: (x[0].submit or 0.0, x[0].job_id, x[0].call_id))
    for y, (r, s, e) in enumerate(ordered):
        start, end = s - t0, e - t0
        if r.submit is not None:
            ax_calls.hlines(y, r.submit - t0, start, colors="0.75", linewidth=1)
        ax_calls.hlines(y, start, end, colors=colour[r.worker or "?"], linewidth=2)
        if r.status != "success":
            ax_calls.plot([end], [y], "x", color="red", markersize=4)
    ax_calls.set_ylabel("call (by submit time)")
    ax_calls.set_title(f"{name}: {len(ran)} calls on {len(workers)} workers (grey: queued)")
    for lane, w in enumerate(workers):
        spans = [(s - t0, e - s) for r, s, e in ran if (r.worker or "?") == w]
        ax_workers.broken_barh(spans, (lane - 0.4, 0.8), facecolors=colour[w])
    ax_workers.set_yticks(range(len(workers)), workers if len(workers) <= 16 else [""] * len(workers))
    ax_workers.set_xlabel("seconds since the first submit")
    ax_workers.set_ylabel("worker")
    storage.put(timeline_url, _png(fig), settings=settings)

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    durations = [e - s for _, s, e in ran]
    lo, hi = (min(durations), max(durations)) if durations else (0.0, 1.0)
    if hi - lo < 1e-6:  # (nearly) equal durations: numpy cannot cut a zero-width range
        lo, hi = lo * 0.9, hi * 1.1 + 1e-6
    ax.hist(durations, bins=max(1, min(50, len(durations))), range=(lo, hi), color="C0", edgecolor="white")
    ax.set_xlabel("call duration (s)")
    ax.set_ylabel("calls")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if durations:
        mean = sum(durations) / len(durations)
        ax.axvline(mean, color="C3", linestyle="--", label=f"mean {mean:.3g}s")
        ax.legend()
    ax.set_title(f"{name}: call durations")
    storage.put(histogram_url, _png(fig), settings=settings)
    return timeline_url, histogram_url
