"""VCF connector (plain and BGZF) against FACTS, pysam and tabix region fetches."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pysam
import pytest

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.genomics import VCF, partition_by_region, partition_records
from xtremehub.errors import MalformedRecord

FILES = ["ex1.vcf.gz", "test.vcf.gz", "index.vcf"]
SPACING = 65536


def _body(path: Path) -> list[bytes]:
    raw = path.read_bytes()
    text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    return [line + b"\n" for line in text.split(b"\n") if line and not line.startswith(b"#")]


@pytest.mark.parametrize("name", FILES)
def test_counts_and_every_partition(testdata: Path, tmp_path: Path, facts: dict[str, Any], name: str) -> None:
    path = testdata / "vcf" / name
    co = CloudObject.from_path(VCF, str(path), metadata_url=str(tmp_path / "i"), spacing=SPACING).preprocess()
    fact = facts[f"vcf/{name}"]
    assert co["num_variants"] == fact["variants"]
    assert co["per_contig"] == fact["per_chrom"]
    assert len(co["samples"]) == fact["samples"]
    assert len(co["header_contigs"]) == fact["header_contigs"]
    assert co["meta_header_lines"] == fact["meta_header_lines"]
    body = _body(path)
    for n in (1, 2, 3, 7, fact["variants"] + 3):
        slices = co.partition(partition_records, num_batches=n)
        assert b"".join(s.get() for s in slices) == b"".join(body), n
    header = co.partition(partition_records, num_batches=2)[1].header()
    assert header.count(b"\n") == fact["meta_header_lines"] + 1
    with pysam.VariantFile(str(path)) as vf:
        assert sum(1 for _ in vf) == co["num_variants"]


@pytest.mark.parametrize("name", ["ex1.vcf.gz", "test.vcf.gz"])
def test_regions_match_tabix(testdata: Path, tmp_path: Path, name: str) -> None:
    path = testdata / "vcf" / name
    co = CloudObject.from_path(VCF, str(path), metadata_url=str(tmp_path / "i"), spacing=SPACING).preprocess()
    with pysam.TabixFile(str(path)) as tbx:
        contigs = list(tbx.contigs)
        regions = [(c, 1, 10**9) for c in contigs] + [(contigs[0], 10_000, 12_000), (contigs[-1], 1, 50_000_000)]
        for region, s in zip(regions, co.partition(partition_by_region, regions=regions), strict=True):
            expected = [line + "\n" for line in tbx.fetch(region[0], region[1] - 1, region[2])]
            assert s.get().decode() == "".join(expected), region


@pytest.mark.s3
def test_vcf_on_s3(testdata: Path, s3_root: str, s3_default: Settings, facts: dict[str, Any]) -> None:
    url = s3_root + "test.vcf.gz"
    storage.put(url, (testdata / "vcf" / "test.vcf.gz").read_bytes())
    co = CloudObject.from_path(VCF, url, spacing=SPACING).preprocess()
    slices = co.partition(partition_records, num_batches=4)
    assert sum(len(s.records()) for s in slices) == facts["vcf/test.vcf.gz"]["variants"]


def test_not_a_vcf(tmp_path: Path) -> None:
    url = str(tmp_path / "x.vcf")
    Path(url).write_text("chr1\t1\t.\tA\tC\n")
    with pytest.raises(MalformedRecord, match="not a VCF"):
        CloudObject.from_path(VCF, url).preprocess()


def test_bad_position(tmp_path: Path) -> None:
    url = str(tmp_path / "x.vcf")
    Path(url).write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\nchr1\tten\t.\tA\tC\n")
    with pytest.raises(MalformedRecord, match="POS"):
        CloudObject.from_path(VCF, url).preprocess()


@pytest.mark.s3
def test_vcf_reads_with_the_objects_settings(testdata: Path, s3_root: str, s3_settings: Settings) -> None:
    """No process-wide S3 settings: header, index and slices all read with the CloudObject's own."""
    url = s3_root + "ex1.vcf.gz"
    storage.put(url, (testdata / "vcf" / "ex1.vcf.gz").read_bytes(), settings=s3_settings)
    co = CloudObject.from_path(VCF, url, spacing=SPACING, settings=s3_settings).preprocess()
    slices = co.partition(partition_records, num_batches=3)
    assert all(s.access.settings == s3_settings for s in slices)
    assert b"".join(s.get() for s in slices) == b"".join(_body(testdata / "vcf" / "ex1.vcf.gz"))
    assert slices[-1].header().startswith(b"##fileformat=VCF")


def test_crlf_vcf_counts_and_records(tmp_path: Path) -> None:
    head = "##fileformat=VCFv4.2\r\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\r\n"
    body = "".join(f"chr{1 + p % 2}\t{p}\t.\tA\tC\t50\tPASS\t.\r\n" for p in range(1, 2001))
    url = str(tmp_path / "crlf.vcf")
    Path(url).write_bytes((head + body).encode())
    co = CloudObject.from_path(VCF, url, spacing=SPACING).preprocess()
    assert co["num_variants"] == 2000
    assert co["per_contig"] == {"chr2": 1000, "chr1": 1000}
    records = [r for s in co.partition(partition_records, num_batches=4) for r in s.records()]
    assert records[0] == ["chr2", "1", ".", "A", "C", "50", "PASS", "."]
    assert len(records) == 2000
