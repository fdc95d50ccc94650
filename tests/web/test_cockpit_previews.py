"""Previews on the real test data: decodable PNGs of the configured size, not blank, deterministic."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from PIL import Image

from xtremehub.catalog.model import Dataset, JobRecord, LineageEdge, LineageGraph
from xtremehub.errors import PreviewUnavailable
from xtremehub.web.previews import PreviewConfig, csv_head_html, lineage_svg, preview_png, write_rate_png

CASES = [
    ("imzml/Example_Continuous.imzML", "imzml"),
    ("imzml/Example_Processed.imzML", "imzml"),
    ("las/autzen_trim.laz", "laz"),
    ("las/simple.las", "las"),
    ("las/lone-star.copc.laz", "copc.laz"),
    ("cog/cog.tif", "cog"),
    ("cog/cogeo.tif", "cog"),
    ("fastq/sample.fastq.bgz", "fastq.gz"),
    ("fastq/multimember_pigz.fastq.gz", "fastq.gz"),
    ("vcf/ex1.vcf.gz", "vcf.gz"),
    ("vcf/index.vcf", "vcf"),
]


@pytest.fixture
def config(tmp_path: Path) -> PreviewConfig:
    return PreviewConfig(width=480, height=360, index_dir=str(tmp_path / "idx"))


def _pixels(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    image.load()
    return np.asarray(image.convert("RGB"), dtype=float)


@pytest.mark.parametrize(("name", "fmt"), CASES, ids=[c[0] for c in CASES])
def test_preview_is_a_picture(testdata: Path, config: PreviewConfig, name: str, fmt: str) -> None:
    png = preview_png(str(testdata / name), fmt, config)
    pixels = _pixels(png)
    assert pixels.shape == (360, 480, 3)
    assert pixels.std() > 10, "blank picture"
    assert preview_png(str(testdata / name), fmt, config) == png, "not deterministic"


def test_ion_image_follows_the_chosen_mz(testdata: Path, config: PreviewConfig) -> None:
    url = str(testdata / "imzml/Example_Continuous.imzML")
    default = preview_png(url, "imzml", config)
    other = preview_png(url, "imzml", config, mz=350.0)
    assert default != other
    assert _pixels(other).std() > 10


def test_vcf_bars_count_every_contig(testdata: Path, config: PreviewConfig) -> None:
    """ex1.vcf.gz has 23 contigs (FACTS.md): a bar per contig, the tallest chr1 (29)."""
    from matplotlib.figure import Figure

    seen: list[int] = []
    original = Figure.add_subplot

    def spy(self: Figure, *args: object, **kwargs: object) -> object:
        ax = original(self, *args, **kwargs)
        bar = ax.bar

        def counting(x: object, height: list[int], *a: object, **k: object) -> object:
            seen.extend(height)
            return bar(x, height, *a, **k)

        ax.bar = counting  # type: ignore[method-assign]
        return ax

    Figure.add_subplot = spy  # type: ignore[method-assign,assignment]
    try:
        preview_png(str(testdata / "vcf/ex1.vcf.gz"), "vcf.gz", config)
    finally:
        Figure.add_subplot = original  # type: ignore[method-assign]
    assert len(seen) == 23
    assert sum(seen) == 165
    assert max(seen) == 29


def test_formats_without_a_picture_raise_a_typed_error(testdata: Path, config: PreviewConfig) -> None:
    with pytest.raises(PreviewUnavailable, match="fasta"):
        preview_png(str(testdata / "fasta/ex1.fa"), "fasta", config)
    with pytest.raises(PreviewUnavailable, match="m/z"):
        preview_png(str(testdata / "vcf/index.vcf"), "vcf", config, mz=100.0)
    empty = Path(config.index_dir).parent / "empty.vcf"
    empty.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\n")
    with pytest.raises(PreviewUnavailable, match="no variant"):
        preview_png(str(empty), "vcf", config)


def test_csv_head_is_escaped(testdata: Path, tmp_path: Path, config: PreviewConfig) -> None:
    table = csv_head_html(str(testdata / "csv-spectrum/csvs/simple.csv"), config)
    assert "<th>a</th>" in table
    assert "<td>1</td>" in table
    evil = tmp_path / "evil.csv"
    evil.write_text('name,note\n"<script>window.__xss=1</script>","<img src=x onerror=alert(1)>"\n')
    table = csv_head_html(str(evil), config)
    assert "<script>" not in table
    assert "<img" not in table
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in table


def test_write_rate_png(config: PreviewConfig) -> None:
    png = write_rate_png([10.0, 11.0, 12.0, 13.0], [5.0, 50.0, 20.0, 0.0], title="s/t", config=config)
    assert _pixels(png).shape == (360, 480, 3)
    with pytest.raises(PreviewUnavailable):
        write_rate_png([1.0], [1.0, 2.0], config=config)


def _ds(ident: str, title: str) -> Dataset:
    t = datetime(2026, 12, 6, tzinfo=UTC)
    return Dataset(
        id=ident, kind="object", url=f"s3://b/{ident}", title=title, owner="o", created=t, modified=t, etag="1"
    )


def test_lineage_svg_is_layered_and_escaped() -> None:
    t = datetime(2026, 12, 6, tzinfo=UTC)
    evil = '<script>window.__xss=1</script>"&'
    graph = LineageGraph(
        root="out",
        datasets=(_ds("in1", evil), _ds("in2", "reference"), _ds("out", "calls"), _ds("final", "report")),
        jobs=(
            JobRecord(job_id="j1", function="pipe.call_variants", owner="o", started=t, finished=t),
            JobRecord(job_id="j2", function="pipe.report", owner="o", started=t, finished=t),
        ),
        edges=(
            LineageEdge("dataset:in1", "job:j1", "input"),
            LineageEdge("dataset:in2", "job:j1", "input"),
            LineageEdge("job:j1", "dataset:out", "output"),
            LineageEdge("dataset:out", "job:j2", "input"),
            LineageEdge("job:j2", "dataset:final", "output"),
        ),
    )
    svg = lineage_svg(graph, link=lambda i: f"/cockpit/datasets/{i}?a=1&b=<2>")
    root = ElementTree.fromstring(svg)  # well-formed XML: everything escaped
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f".//{ns}rect")) == 4
    assert len(root.findall(f".//{ns}ellipse")) == 2
    assert len(root.findall(f".//{ns}path")) == 5 + 1  # 5 edges + the arrow head
    texts = [e.text for e in root.iter(f"{ns}text")]
    assert any(t and t.startswith("<script>") for t in texts)  # shown as text, not markup
    assert "<script" not in svg
    x = {g.get("data-node"): float(g[1].get("x") or g[1].get("cx") or 0) for g in root.iter(f"{ns}g")}
    assert x["dataset:in1"] < x["job:j1"] < x["dataset:out"] < x["job:j2"] < x["dataset:final"]
    assert lineage_svg(graph) == lineage_svg(graph)
    # the root as a bare id or as a node id ("dataset:<id>", as the stores give it): the same picture
    assert lineage_svg(replace(graph, root="dataset:out")) == lineage_svg(graph)
    assert svg.count('stroke-width="2.5"') == 1  # the root, drawn once, highlighted


def test_cog_without_a_small_overview_draws_a_window(testdata: Path, tmp_path: Path) -> None:
    """max_side below every level: a window of the coarsest level, not the whole level."""
    config = PreviewConfig(width=320, height=240, max_side=64, index_dir=str(tmp_path / "idx"))
    png = preview_png(str(testdata / "cog/cog.tif"), "cog", config)
    assert _pixels(png).std() > 10
    assert png != preview_png(
        str(testdata / "cog/cog.tif"), "cog", PreviewConfig(width=320, height=240, index_dir=config.index_dir)
    )
