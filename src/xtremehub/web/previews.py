"""Pictures of datasets, per format: small PNGs (matplotlib, Agg) made from the connectors.

A preview reads a *bounded* part of the object, so it stays fast on big data:

- imzML: the ion image of one m/z (default: the most intense peak of the first spectra);
- LAS/LAZ/COPC: a terrain model (lowest Z per cell) shaded as a hillshade height map;
- COG: the finest overview level at most ``max_side`` pixels across (else a window of the
  coarsest level about that size);
- FASTQ(.gz): read lengths and per-position quality of the first ``max_reads`` reads;
- VCF(.gz): variants per contig (the first ``max_records`` records);
- CSV: the first rows as an HTML table (every cell escaped): :func:`csv_head_html`;
- streams: write rate over time: :func:`write_rate_png`.

Formats without a picture raise :class:`~xtremehub.errors.PreviewUnavailable`.
:func:`lineage_svg` draws a lineage graph as SVG (see :mod:`xtremehub.web.lineage_svg`).

Example:
    >>> preview_kind("fastq.gz"), preview_kind("csv"), preview_kind("fasta")
    ('png', 'html', None)
    >>> png = write_rate_png([0.0, 1.0, 2.0], [10.0, 30.0, 20.0], title="demo")
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import html
import io
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import numpy as np

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.errors import PreviewUnavailable
from xtremehub.web.lineage_svg import lineage_svg

__all__ = [
    "PreviewConfig",
    "csv_head_html",
    "lineage_svg",
    "normalise_format",
    "preview_kind",
    "preview_png",
    "write_rate_png",
]

log = logging.getLogger(__name__)

#: Dataset format names (as the catalog writes them) -> the preview that draws them.
_ALIASES: dict[str, str] = {
    "imzml": "imzml",
    "las": "las",
    "laz": "las",
    "copc": "las",
    "copc.laz": "las",
    "cog": "cog",
    "tif": "cog",
    "tiff": "cog",
    "geotiff": "cog",
    "fastq": "fastq",
    "fq": "fastq",
    "fastq.gz": "fastq",
    "fq.gz": "fastq",
    "fastq.bgz": "fastq",
    "fastq_gzip": "fastq",
    "vcf": "vcf",
    "vcf.gz": "vcf",
    "vcf.bgz": "vcf",
    "csv": "csv",
}


@dataclass(frozen=True)
class PreviewConfig:
    """How big and how bounded previews are.

    Attributes:
        width, height: figure size in pixels (at ``dpi``).
        dpi: dots per inch of the figure.
        max_reads: FASTQ reads sampled.
        max_records: VCF records counted.
        max_spectra: imzML spectra scanned to find the most intense peak.
        ppm: imzML ion image window (± ppm).
        max_side: COG: the largest overview side drawn (pixels).
        max_points: LAS: points binned at most (whole chunks are skipped evenly beyond it).
        cells: LAS: terrain model cells along the longer side.
        csv_rows: CSV rows shown.
        index_dir: where connector indexes of previewed objects go (never beside the object).
        settings: storage settings (None: this process's).
    """

    width: int = 640
    height: int = 480
    dpi: int = 100
    max_reads: int = 5000
    max_records: int = 200_000
    max_spectra: int = 256
    ppm: float = 50.0
    max_side: int = 1024
    max_points: int = 2_000_000
    cells: int = 200
    csv_rows: int = 20
    index_dir: str = field(default_factory=lambda: os.path.join(tempfile.gettempdir(), "xhub-preview-index"))
    settings: Settings | None = None


def normalise_format(fmt: str | None, url: str = "") -> str | None:
    """The preview family of a dataset format (or of the URL's suffix when ``fmt`` is None).

    Example:
        >>> normalise_format("FASTQ.GZ"), normalise_format(None, "s3://b/x.copc.laz"), normalise_format("bam")
        ('fastq', 'las', None)
    """
    if fmt:
        return _ALIASES.get(fmt.strip().lower())
    name = url.rsplit("/", 1)[-1].lower()
    for suffix in sorted(_ALIASES, key=len, reverse=True):
        if name.endswith("." + suffix):
            return _ALIASES[suffix]
    return None


def preview_kind(fmt: str | None, url: str = "") -> Literal["png", "html"] | None:
    """``"png"`` (:func:`preview_png`), ``"html"`` (:func:`csv_head_html`) or None (no preview)."""
    family = normalise_format(fmt, url)
    if family is None:
        return None
    return "html" if family == "csv" else "png"


def preview_png(
    url: str, fmt: str | None, config: PreviewConfig = PreviewConfig(), *, mz: float | None = None
) -> bytes:
    """A PNG picture of the object at ``url`` in format ``fmt``.

    ``mz``: the ion image's m/z (imzML only; default: the most intense peak).

    Raises:
        PreviewUnavailable: the format has no picture (names the URL and format).
    """
    family = normalise_format(fmt, url)
    draw = _DRAWERS.get(family or "")
    if draw is None:
        raise PreviewUnavailable(url, fmt)
    if mz is not None and family != "imzml":
        raise PreviewUnavailable(url, fmt, detail="an m/z applies to imzML only")
    return draw(url, config, mz)


# -- figures -----------------------------------------------------------------------------------


def _figure(config: PreviewConfig) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(config.width / config.dpi, config.height / config.dpi), dpi=config.dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any, config: PreviewConfig) -> bytes:
    buf = io.BytesIO()
    # no timestamps or software tags in the file: the same data gives the same bytes
    fig.savefig(buf, format="png", dpi=config.dpi, metadata={"Software": None})
    return buf.getvalue()


def write_rate_png(
    times: Sequence[float],
    rates: Sequence[float],
    *,
    title: str = "",
    unit: str = "events/s",
    config: PreviewConfig = PreviewConfig(),
) -> bytes:
    """A line plot of a stream's write rate: ``rates[i]`` at ``times[i]`` (seconds, any origin)."""
    if len(times) != len(rates):
        raise PreviewUnavailable("stream", "rate", detail=f"{len(times)} times but {len(rates)} rates")
    fig = _figure(config)
    ax = fig.add_subplot()
    t = np.asarray(times, dtype=float)
    ax.plot(t - (t[0] if len(t) else 0.0), np.asarray(rates, dtype=float), marker="o", markersize=3)
    ax.set_xlabel("seconds")
    ax.set_ylabel(unit)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.set_title(title or "write rate")
    return _png(fig, config)


# -- per format --------------------------------------------------------------------------------


def _cloud_object(fmt: str, url: str, config: PreviewConfig) -> Any:
    """The connector's object with its index in ``config.index_dir`` (built once per URL)."""
    from xtremehub.connectors import CloudObject

    os.makedirs(config.index_dir, exist_ok=True)
    digest = hashlib.sha256(url.encode()).hexdigest()[:24]
    meta = os.path.join(config.index_dir, f"{digest}.{fmt}.xhidx")
    return CloudObject(fmt, url, metadata_url=meta, settings=config.settings).preprocess()


def _imzml(url: str, config: PreviewConfig, mz: float | None) -> bytes:
    from xtremehub.connectors.imaging import ion_images

    co = _cloud_object("imzml", url, config)
    if mz is None:
        first = co.partition("spectra", num_batches=max(1, -(-int(co["num_spectra"]) // config.max_spectra)))[0]
        batch = first.get()
        if len(batch.intensities) == 0:
            raise PreviewUnavailable(url, "imzml", detail="no peaks in the first spectra")
        k = int(np.argmax(batch.intensities))
        if batch.continuous:
            k = k % len(batch.mz) if len(batch.mz) else 0
        mz = float(batch.mz[k])
    images = ion_images(co, [mz], config.ppm)
    fig = _figure(config)
    ax = fig.add_subplot()
    height, width = images.images[0].shape
    shown = ax.imshow(
        images.images[0],
        cmap="viridis",
        origin="upper",
        interpolation="nearest",
        extent=(0.5, width + 0.5, height + 0.5, 0.5),
    )
    fig.colorbar(shown, ax=ax, label="summed intensity")
    ax.set_title(f"ion image m/z {mz:.4f} ± {config.ppm:g} ppm ({width} x {height} pixels)")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    return _png(fig, config)


def _las(url: str, config: PreviewConfig, mz: float | None) -> bytes:
    from matplotlib.colors import LightSource

    from xtremehub.connectors.pointcloud import terrain_model

    try:
        co = _cloud_object("las", url, config)
    except Exception:  # a COPC file the LAS reader refuses: the COPC connector reads it
        co = _cloud_object("copc", url, config)
    mins, maxs = co["mins"], co["maxs"]
    side = max(float(maxs[0]) - float(mins[0]), float(maxs[1]) - float(mins[1])) or 1.0
    slices = co.partition("points", num_batches=max(1, min(int(co.attributes.get("chunks") or 8), 64)))
    points = int(co.attributes.get("points") or co.attributes.get("num_points") or 0)
    if points > config.max_points and len(slices) > 1:  # bounded: every k-th slice
        keep = max(1, round(len(slices) * config.max_points / points))
        slices = [slices[i] for i in np.linspace(0, len(slices) - 1, keep).round().astype(int)]
    model = terrain_model(co, resolution=side / config.cells, slices=slices)
    z = model.values
    if np.isnan(z).all():
        raise PreviewUnavailable(url, "las", detail="no points")
    filled = np.where(np.isnan(z), np.nanmin(z), z)
    g = model.grid
    dx, dy = g.cell_size
    shade = LightSource(azdeg=315, altdeg=45).hillshade(filled, vert_exag=1.0, dx=dx, dy=dy)
    fig = _figure(config)
    ax = fig.add_subplot()
    extent = (g.xmin, g.xmax, g.ymin, g.ymax)
    shown = ax.imshow(np.ma.masked_invalid(z), extent=extent, cmap="terrain", interpolation="nearest")
    ax.imshow(np.ma.masked_array(shade, np.isnan(z)), extent=extent, cmap="gray", alpha=0.35, interpolation="nearest")
    fig.colorbar(shown, ax=ax, label="lowest Z per cell")
    ax.set_title(f"terrain model, {g.cols} x {g.rows} cells")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    return _png(fig, config)


def _cog(url: str, config: PreviewConfig, mz: float | None) -> bytes:
    from xtremehub.connectors.raster import partition_grid

    co = _cloud_object("cog", url, config)
    levels = co["levels"]
    fits = [k for k, lv in enumerate(levels) if max(int(lv["width"]), int(lv["height"])) <= config.max_side]
    level = fits[0] if fits else len(levels) - 1
    if fits:
        window = partition_grid(co, 1, 1, level=level)[0].get()
    else:  # no overview small enough: the top-left window of the coarsest level, about max_side across
        lv = levels[level]
        tiles = (
            max(1, config.max_side // int(lv["block_height"])),
            max(1, config.max_side // int(lv["block_width"])),
        )
        window = partition_grid(co, window_tiles=tiles, level=level)[0].get()
    data = np.asarray(window.data, dtype=float)
    fig = _figure(config)
    ax = fig.add_subplot()
    if data.shape[0] >= 3:
        rgb = np.moveaxis(data[:3], 0, -1)
        lo, hi = np.nanpercentile(rgb, 2), np.nanpercentile(rgb, 98)
        ax.imshow(np.clip((rgb - lo) / ((hi - lo) or 1.0), 0, 1), interpolation="nearest")
    else:
        shown = ax.imshow(data[0], cmap="gray", interpolation="nearest")
        fig.colorbar(shown, ax=ax, label="band 1")
    ax.set_title(f"level {level} ({data.shape[2]} x {data.shape[1]} pixels, {data.shape[0]} band(s))")
    ax.set_axis_off()
    return _png(fig, config)


def _text_lines(url: str, config: PreviewConfig) -> Iterator[bytes]:
    """The object's lines, gunzipped when it starts with the gzip magic (any number of members)."""
    raw: IO[bytes] = storage.open(url, settings=config.settings)
    with raw:
        head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
        stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw  # type: ignore[assignment]
        try:
            yield from stream
        except (OSError, EOFError) as exc:
            raise PreviewUnavailable(url, None, detail=f"unreadable: {exc}") from exc


def _fastq(url: str, config: PreviewConfig, mz: float | None) -> bytes:
    lengths: list[int] = []
    quals: list[np.ndarray[Any, Any]] = []
    lines = _text_lines(url, config)
    for n, line in enumerate(lines):
        if n % 4 == 3:
            q = np.frombuffer(line.rstrip(b"\r\n"), dtype=np.uint8).astype(np.int16) - 33
            lengths.append(len(q))
            quals.append(q)
            if len(quals) >= config.max_reads:
                break
    if not quals:
        raise PreviewUnavailable(url, "fastq", detail="no reads")
    longest = max(lengths)
    matrix = np.full((len(quals), longest), np.nan)
    for i, q in enumerate(quals):
        matrix[i, : len(q)] = q
    fig = _figure(config)
    left, right = fig.subplots(1, 2)
    left.hist(lengths, bins=min(50, max(1, longest - min(lengths) + 1)), color="#4477aa")
    left.set_xlabel("read length")
    left.set_ylabel("reads")
    left.set_title(f"read lengths ({len(lengths)} reads)")
    pos = np.arange(1, longest + 1)
    q25, q50, q75 = np.nanpercentile(matrix, [25, 50, 75], axis=0)
    right.fill_between(pos, q25, q75, alpha=0.3, color="#228833", label="25-75%")
    right.plot(pos, q50, color="#228833", label="median")
    right.plot(pos, np.nanmean(matrix, axis=0), color="#aa3377", linewidth=1, label="mean")
    right.set_xlabel("position in read")
    right.set_ylabel("Phred quality")
    right.set_title("quality per position")
    right.legend(fontsize=7)
    return _png(fig, config)


def _vcf(url: str, config: PreviewConfig, mz: float | None) -> bytes:
    counts: Counter[str] = Counter()
    seen = 0
    for line in _text_lines(url, config):
        if line.startswith(b"#") or not line.strip():
            continue
        counts[line.split(b"\t", 1)[0].decode(errors="replace")] += 1
        seen += 1
        if seen >= config.max_records:
            break
    if not counts:
        raise PreviewUnavailable(url, "vcf", detail="no variant records")
    contigs = list(counts)  # file order
    fig = _figure(config)
    ax = fig.add_subplot()
    ax.bar(range(len(contigs)), [counts[c] for c in contigs], color="#4477aa")
    ax.set_xticks(range(len(contigs)), contigs, rotation=90 if len(contigs) > 8 else 0, fontsize=7)
    ax.set_ylabel("variants")
    capped = " (first records)" if seen >= config.max_records else ""
    ax.set_title(f"variants per contig: {seen} in {len(contigs)} contigs{capped}")
    return _png(fig, config)


_DRAWERS = {"imzml": _imzml, "las": _las, "cog": _cog, "fastq": _fastq, "vcf": _vcf}


def csv_head_html(url: str, config: PreviewConfig = PreviewConfig()) -> str:
    """The first ``config.csv_rows`` rows of a CSV as an HTML ``<table>``; every cell is escaped.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
        >>> _ = p.write_text("a,b\\n1,<i>x</i>\\n")
        >>> print(csv_head_html(str(p)))  # doctest: +NORMALIZE_WHITESPACE
        <table class="csv-head"><thead><tr><th>a</th><th>b</th></tr></thead>
        <tbody><tr><td>1</td><td>&lt;i&gt;x&lt;/i&gt;</td></tr></tbody></table>
    """
    text = (line.decode("utf-8", errors="replace") for line in _text_lines(url, config))
    rows: list[list[str]] = []
    for row in csv.reader(text):
        rows.append(row)
        if len(rows) > config.csv_rows:
            break
    if not rows:
        return '<table class="csv-head"></table>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f'<table class="csv-head"><thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody></table>'
