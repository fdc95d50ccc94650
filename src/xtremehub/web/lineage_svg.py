"""A lineage graph as a self-contained SVG: layered left to right, no external tools.

Datasets are boxes, jobs are ellipses, edges are arrows from what was read to the job and
from the job to what it wrote. Each node sits in the layer of its longest path from a
source; nodes within a layer are ordered by the mean position of their predecessors (one
barycentre pass), ties by id, so the same graph always gives the same picture. Every piece
of text and every link is XML-escaped.

Example:
    >>> from datetime import datetime, timezone
    >>> from xtremehub.catalog.model import Dataset, JobRecord, LineageEdge, LineageGraph
    >>> t = datetime(2026, 12, 6, tzinfo=timezone.utc)
    >>> ds = lambda i, title: Dataset(id=i, kind="object", url=f"s3://b/{i}", title=title,
    ...                               owner="alice", created=t, modified=t, etag="1")
    >>> g = LineageGraph(root="b", datasets=(ds("a", "reads <raw>"), ds("b", "counts")),
    ...     jobs=(JobRecord(job_id="j1", function="pipe.count", owner="alice", started=t, finished=t),),
    ...     edges=(LineageEdge("dataset:a", "job:j1", "input"), LineageEdge("job:j1", "dataset:b", "output")))
    >>> svg = lineage_svg(g)
    >>> svg.startswith("<svg") and "reads &lt;raw&gt;" in svg and svg.count("<ellipse") == 1
    True
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from html import escape

from xtremehub.catalog.model import LineageGraph

__all__ = ["lineage_svg"]

_BOX_W, _BOX_H = 170, 44
_GAP_X, _GAP_Y = 70, 22
_PAD = 16
_MAX_LABEL = 24


def _short(text: str, limit: int = _MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _layers(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layer of each node (cycles, which lineage should not have, are cut)."""
    preds: dict[str, list[str]] = defaultdict(list)
    for s, t in edges:
        preds[t].append(s)
    layer: dict[str, int] = {}
    visiting: set[str] = set()

    def depth(n: str) -> int:
        if n in layer:
            return layer[n]
        if n in visiting:
            return 0
        visiting.add(n)
        d = max((depth(p) + 1 for p in preds[n]), default=0)
        visiting.discard(n)
        layer[n] = d
        return d

    for n in nodes:
        depth(n)
    return layer


def lineage_svg(graph: LineageGraph, *, link: Callable[[str], str] | None = None) -> str:
    """Draw ``graph``; ``link(dataset_id)`` (optional) makes dataset boxes links to their pages."""
    labels: dict[str, tuple[str, str]] = {}
    for d in graph.datasets:
        labels[f"dataset:{d.id}"] = (d.title or d.id, d.url)
    for j in graph.jobs:
        labels[f"job:{j.job_id}"] = (j.function.rsplit(".", 1)[-1] or j.job_id, f"job {j.job_id} ({j.status})")
    edges = sorted({(e.source, e.target) for e in graph.edges})
    for s, t in edges:  # edges may name nodes the graph did not carry (depth limit)
        for n in (s, t):
            labels.setdefault(n, (n.split(":", 1)[-1], n))
    root = graph.root if graph.root.startswith(("dataset:", "job:")) else f"dataset:{graph.root}"
    labels.setdefault(root, (graph.root, graph.root))
    nodes = sorted(labels)
    layer = _layers(nodes, edges)
    columns: dict[int, list[str]] = defaultdict(list)
    for n in nodes:
        columns[layer[n]].append(n)
    row: dict[str, float] = {}
    preds: dict[str, list[str]] = defaultdict(list)
    for s, t in edges:
        preds[t].append(s)
    for c in sorted(columns):
        col = columns[c]
        col.sort(key=lambda n: (sum(row[p] for p in preds[n]) / len(preds[n]) if preds[n] else 0.0, n))
        for i, n in enumerate(col):
            row[n] = float(i)
    tallest = max(len(col) for col in columns.values())
    width = 2 * _PAD + len(columns) * _BOX_W + (len(columns) - 1) * _GAP_X
    height = 2 * _PAD + tallest * _BOX_H + (tallest - 1) * _GAP_Y
    pos: dict[str, tuple[float, float]] = {}
    for c, col in columns.items():
        offset = (tallest - len(col)) * (_BOX_H + _GAP_Y) / 2
        for i, n in enumerate(col):
            pos[n] = (_PAD + c * (_BOX_W + _GAP_X), _PAD + offset + i * (_BOX_H + _GAP_Y))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="lineage graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
    ]
    for s, t in edges:
        (x1, y1), (x2, y2) = pos[s], pos[t]
        ax, ay, bx, by = x1 + _BOX_W, y1 + _BOX_H / 2, x2, y2 + _BOX_H / 2
        mid = (ax + bx) / 2
        out.append(
            f'<path d="M {ax:.1f} {ay:.1f} C {mid:.1f} {ay:.1f}, {mid:.1f} {by:.1f}, {bx:.1f} {by:.1f}" '
            'fill="none" stroke="#555" stroke-width="1.5" marker-end="url(#arrow)"/>'
        )
    for n in nodes:
        x, y = pos[n]
        title, tip = labels[n]
        is_job = n.startswith("job:")
        fill = "#fde7c8" if is_job else ("#cfe3f7" if n == root else "#eef4fa")
        stroke = "#c77700" if is_job else ("#1d5fa0" if n == root else "#6a8bad")
        cx, cy = x + _BOX_W / 2, y + _BOX_H / 2
        if is_job:
            shape = f'<ellipse cx="{cx:.1f}" cy="{cy:.1f}" rx="{_BOX_W / 2:.1f}" ry="{_BOX_H / 2:.1f}" '
        else:
            shape = f'<rect x="{x:.1f}" y="{y:.1f}" width="{_BOX_W}" height="{_BOX_H}" rx="4" '
        width_px = 2.5 if n == root else 1.2
        node = (
            f'<g class="{"job" if is_job else "dataset"}" data-node="{escape(n)}"><title>{escape(tip)}</title>'
            f'{shape}fill="{fill}" stroke="{stroke}" stroke-width="{width_px}"/>'
            f'<text x="{cx:.1f}" y="{cy + 4:.1f}" text-anchor="middle" font-family="sans-serif" font-size="12">'
            f"{escape(_short(title))}</text></g>"
        )
        if link is not None and not is_job:
            node = f'<a href="{escape(link(n.split(":", 1)[1]))}">{node}</a>'
        out.append(node)
    out.append("</svg>")
    return "\n".join(out)
