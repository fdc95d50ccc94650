"""catalog.extract: per-format facts from the connector indexes, checked against tests/data/FACTS.json."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from xtremehub import storage
from xtremehub.catalog.extract import extract, extract_stream, stream_url
from xtremehub.config import Settings
from xtremehub.connectors import CloudObject
from xtremehub.errors import ObjectNotFound, StaleIndex, UnsafeURL, UnsupportedData, UnsupportedURL
from xtremehub.streams import StreamManager
from xtremehub.streams.history import StreamHistory


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(__file__).parents[1] / "data" / "FACTS.json").read_text())
    return data


@pytest.fixture
def data(testdata: Path, tmp_path: Path) -> Path:
    """A writable copy of the test data (indexes are written beside the objects)."""
    for sub in ("fastq", "fasta", "vcf", "imzml", "las", "cog"):
        shutil.copytree(testdata / sub, tmp_path / sub)
    return tmp_path


@pytest.mark.parametrize(
    "name", ["Illimina1.8.fq.gz", "multiblock.fastq.gz", "multimember_pigz.fastq.gz", "sample.fastq.bgz"]
)
def test_fastq_reads_bases_mean_length(data: Path, expected: dict[str, Any], name: str) -> None:
    want = expected[f"fastq/{name}"]
    got = extract(str(data / "fastq" / name))
    assert got.format == "fastq_gzip"
    assert got.facts["reads"] == want["reads"]
    assert got.facts["bases"] == want["total_bases"]
    assert got.facts["mean_read_length"] == pytest.approx(want["total_bases"] / want["reads"])
    assert got.health is not None
    assert got.health.number_of_records == want["reads"]
    assert got.health.health_category == ("genomics",)
    dist = got.distributions[0]
    assert (dist.size, dist.checksum) == (want["size"], f"sha256:{want['sha256']}")
    assert got.facts["checksum_source"] == "computed"
    assert got.source_version == storage.head(str(data / "fastq" / name)).etag


def test_fastq_mates_are_read_from_names(data: Path) -> None:
    assert extract(str(data / "fastq" / "Illimina1.8.fq.gz")).facts["mate"] == 1  # "1:N:0:..." comment
    assert extract(str(data / "fastq" / "multiblock.fastq.gz")).facts["paired"] is True  # ".../1"
    assert extract(str(data / "fastq" / "multimember_pigz.fastq.gz")).facts["paired"] is False


@pytest.mark.parametrize("name", ["ce.fa", "ex1.fa", "test.fa"])
def test_fasta_sequences_bases_names(data: Path, expected: dict[str, Any], name: str) -> None:
    want = expected[f"fasta/{name}"]
    got = extract(str(data / "fasta" / name))
    assert (got.facts["sequences"], got.facts["bases"]) == (want["sequences"], want["total_length"])
    assert got.facts["names"][0] == want["first"][0]
    assert got.facts["names"][-1] == want["last"][0]
    assert got.health is None


@pytest.mark.parametrize("name", ["ex1.vcf.gz", "index.vcf", "test.vcf.gz"])
def test_vcf_samples_and_variants_per_contig(data: Path, expected: dict[str, Any], name: str) -> None:
    want = expected[f"vcf/{name}"]
    got = extract(str(data / "vcf" / name))
    assert got.facts["variants"] == want["variants"]
    assert sum(got.facts["variants_per_contig"].values()) == want["variants"]
    if "per_chrom" in want:
        assert got.facts["variants_per_contig"] == want["per_chrom"]
    assert got.facts["samples"] == want["samples"]
    assert got.health is not None
    assert (got.health.number_of_records, got.health.number_of_unique_individuals) == (
        want["variants"],
        want["samples"],
    )


@pytest.mark.parametrize("name", ["Example_Continuous", "Example_Processed", "pewlib_test"])
def test_imzml_spectra_grid_mz_range(data: Path, expected: dict[str, Any], name: str) -> None:
    want = expected[f"imzml/{name}.imzML"]
    got = extract(str(data / "imzml" / f"{name}.imzML"))
    assert got.facts["spectra"] == want["spectra"]
    assert got.facts["mode"] == want["mode"]
    low, high = got.facts["mz_range"]
    assert low <= want["spectrum0_mz_range"][0]
    assert high >= want["spectrum0_mz_range"][1]
    assert got.health is not None
    assert got.health.health_category == ("metabolomics",)
    assert got.health.number_of_records == want["spectra"]


def test_imzml_pixel_grid_and_spectrum_type(data: Path) -> None:
    got = extract(str(data / "imzml" / "Example_Continuous.imzML"))
    assert got.facts["pixel_grid"] == [3, 3]
    assert got.facts["spectrum_type"] in ("centroid", "profile")
    assert got.facts["mz_range"] == pytest.approx([100.08333587646484, 799.9166870117188])


@pytest.mark.parametrize(
    ("name", "fmt", "crs"),
    [
        ("simple.las", "las", None),
        ("autzen_trim.laz", "las", None),  # an ESRI WKT without an EPSG code
        ("test1_4.las", "las", "EPSG:2903"),
        ("simple.copc.laz", "copc", "EPSG:2991"),  # compound: the horizontal part's code
        ("lone-star.copc.laz", "copc", None),
    ],
)
def test_pointcloud_count_bounds_crs(data: Path, expected: dict[str, Any], name: str, fmt: str, crs: str) -> None:
    want = expected[f"las/{name}"]
    got = extract(str(data / "las" / name))
    assert got.format == fmt
    assert got.facts["points"] == want["point_count"]
    assert got.facts["point_format"] == want["point_format"]
    assert got.facts["bounds"] == {"min": want["header_mins"], "max": want["header_maxs"]}
    assert got.facts["crs"] == crs


@pytest.mark.parametrize("name", ["cog.tif", "cogeo.tif", "nocog.tif"])
def test_cog_size_bands_dtype_crs_bounds(data: Path, expected: dict[str, Any], name: str) -> None:
    want = expected[f"cog/{name}"]
    got = extract(str(data / "cog" / name))
    f = got.facts
    assert (f["width"], f["height"], f["bands"], f["dtype"], f["crs"]) == (
        want["width"],
        want["height"],
        want["bands"],
        want["dtype"],
        want["crs"],
    )
    a, _, c, _, e, f0 = want["transform"]
    assert f["bounds"] == pytest.approx([c, f0 + e * want["height"], c + a * want["width"], f0])
    assert f["cloud_optimized"] is (name != "nocog.tif")


def test_csv_and_text_rows_columns(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("id,name,score\n1,a,0.5\n2,b,0.7\n3,c,0.9\n")
    (tmp_path / "notes.txt").write_text("one\ntwo\nthree\n")
    got = extract(str(tmp_path / "t.csv"))
    assert (got.format, got.facts["rows"], got.facts["columns"]) == ("csv", 3, 3)
    assert got.facts["column_names"] == ["id", "name", "score"]
    assert extract(str(tmp_path / "notes.txt")).facts["lines"] == 3


def test_an_existing_current_index_is_reused(data: Path) -> None:
    url = str(data / "vcf" / "test.vcf.gz")
    CloudObject("vcf", url).preprocess()
    sidecar = CloudObject("vcf", url).metadata_url
    before = storage.head(sidecar).etag
    extract(url)
    assert storage.head(sidecar).etag == before  # not rebuilt


@pytest.mark.s3
def test_s3_object_checksum_is_the_etag_md5(s3_root: str, s3_settings: Settings, testdata: Path) -> None:
    body = (testdata / "vcf" / "ex1.vcf.gz").read_bytes()
    url = f"{s3_root}ex1.vcf.gz"
    storage.put(url, body, settings=s3_settings)
    got = extract(url, settings=s3_settings)
    assert got.distributions[0].checksum == f"md5:{hashlib.md5(body).hexdigest()}"
    assert got.facts["checksum_source"] == "etag"
    assert got.facts["variants"] == 165


def test_prefix_counts_objects_and_size(data: Path) -> None:
    CloudObject("las", str(data / "las" / "simple.las")).preprocess()  # a sidecar is not an object of the prefix
    got = extract(f"{data / 'las'}/")
    files = [p for p in (data / "las").iterdir() if p.is_file()]
    assert got.format == "prefix"
    assert got.facts["objects"] == len(files) == 6
    assert got.facts["total_size"] == sum(p.stat().st_size for p in files)
    assert got.distributions[0].size == got.facts["total_size"]
    again = extract(f"{data / 'las'}/")
    assert again.source_version == got.source_version
    (data / "las" / "extra.las").write_bytes(b"x")
    assert extract(f"{data / 'las'}/").source_version != got.source_version


def test_missing_object_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        extract(str(tmp_path / "absent.vcf"))
    (tmp_path / "blob.bin").write_bytes(b"\x00" * 10)
    with pytest.raises(UnsupportedData, match="no connector"):
        extract(str(tmp_path / "blob.bin"))
    with pytest.raises(UnsupportedData, match="'hdf5'"):
        extract(str(tmp_path / "blob.bin"), format="hdf5")


@pytest.mark.parametrize(
    "url",
    [
        "file:///data/../../etc/passwd",
        "/data/x/../../etc/passwd",
        "s3://bucket/a/../../b.vcf",
        "mem://bucket/%2e%2e/secret.csv",
        "s3://bucket/a/./b.vcf",
    ],
)
def test_path_traversal_is_refused(url: str) -> None:
    with pytest.raises(UnsafeURL, match="path traversal") as caught:
        extract(url)
    assert isinstance(caught.value, UnsupportedURL)
    assert caught.value.url == url


def test_object_rewritten_during_extraction_is_stale(tmp_path: Path, rewrite_during_facts: list[str]) -> None:
    url = str(tmp_path / "t.csv")
    Path(url).write_text("a,b\n1,2\n")
    with pytest.raises(StaleIndex, match="changed while it was being registered"):
        extract(url)
    assert rewrite_during_facts == [url]


def test_stream_history_events_bytes_segments_cut(tmp_path: Path) -> None:
    lts = f"{tmp_path / 'lts'}/"
    with StreamManager.embedded(tmp_path / "data", lts, lts_chunk_size=4 << 10, lts_flush_delay=0.0) as m:
        m.create_scope("lab")
        m.create_stream("lab", "sensors")
        with m.create_writer("lab", "sensors") as writer:
            for i in range(300):
                writer.write_event(f"reading-{i:04d}".encode() * 4, routing_key=f"s{i % 3}")
        m.seal_stream("lab", "sensors")
        history = StreamHistory(m, "lab", "sensors", lts, wait=30)
        got = extract_stream(history)
    assert got.format == "stream"
    assert got.facts["events"] == 300
    assert got.facts["bytes"] == history.nbytes > 300 * 48
    assert got.facts["segments"] == len(history.ranges) >= 1
    assert got.source_version == history.end.to_json()
    first, last = got.facts["time_range"]
    assert first <= last
    assert got.distributions[0].url == stream_url("lab", "sensors") == "xhub-stream://lab/sensors"
