"""FASTA connector: faidx-compatible index and slices, against FACTS, pysam and ce.fa.fai."""

from __future__ import annotations

import gzip
import pickle
import shutil
from pathlib import Path
from typing import Any

import pysam
import pytest

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.formats.genomics import fasta as fasta_module
from xtremehub.connectors.genomics import FASTA, partition_bases, partition_sequences, read_fai
from xtremehub.errors import MalformedRecord

FILES = ["ce.fa", "ex1.fa", "test.fa"]


def _copy(testdata: Path, tmp_path: Path, name: str) -> str:
    target = tmp_path / name
    shutil.copy(testdata / "fasta" / name, target)
    return str(target)


@pytest.mark.parametrize("name", FILES)
def test_index_matches_facts_and_pysam(testdata: Path, tmp_path: Path, facts: dict[str, Any], name: str) -> None:
    url = _copy(testdata, tmp_path, name)
    co = CloudObject.from_path(FASTA, url).preprocess()
    fact = facts[f"fasta/{name}"]
    assert co["num_sequences"] == fact["sequences"]
    assert co["total_length"] == fact["total_length"]
    pysam.faidx(url)  # writes url.fai, the reference
    assert co.format.fai_text(co) == Path(url + ".fai").read_text()


def test_fai_equals_the_shipped_one_and_roundtrips(testdata: Path, tmp_path: Path) -> None:
    url = _copy(testdata, tmp_path, "ce.fa")
    co = CloudObject.from_path(FASTA, url).preprocess()
    assert co.format.fai_text(co) == (testdata / "fasta" / "ce.fa.fai").read_text()
    written = co.format.write_fai(co, str(tmp_path / "out.fai"))
    assert read_fai(written) == FASTA.entries(co)


@pytest.mark.parametrize("name", FILES)
def test_slices_rebuild_every_sequence(testdata: Path, tmp_path: Path, name: str) -> None:
    url = _copy(testdata, tmp_path, name)
    co = CloudObject.from_path(FASTA, url).preprocess()
    with pysam.FastaFile(url) as ref:
        truth = {n: ref.fetch(n) for n in ref.references}
    for strategy, params in [
        (partition_sequences, {"num_batches": 1}),
        (partition_sequences, {"num_batches": 3}),
        (partition_bases, {"num_slices": 7}),
        (partition_bases, {"bases_per_slice": 997}),
    ]:
        pieces: dict[str, list[tuple[int, str]]] = {}
        for s in co.partition(strategy, **params):
            for seq_name, start, bases in s.get():
                pieces.setdefault(seq_name, []).append((start, bases))
        rebuilt = {n: "".join(b for _, b in sorted(p)) for n, p in pieces.items()}
        assert rebuilt == truth, (strategy.__name__, params)


def test_fetch_check_and_slice_metadata(testdata: Path, tmp_path: Path, facts: dict[str, Any]) -> None:
    url = _copy(testdata, tmp_path, "ce.fa")
    co = CloudObject.from_path(FASTA, url).preprocess()
    first = co.partition(partition_bases, bases_per_slice=20)[0]
    assert first.get() == [("CHROMOSOME_I", 0, facts["fasta/ce.fa"]["fetch_check"]["CHROMOSOME_I:1-20"])]
    middle = co.partition(partition_bases, bases_per_slice=100_000)[3]
    name, start, bases = middle.get()[0]
    assert (name, start, len(bases)) == ("CHROMOSOME_I", 300_000, 100_000)


def test_parallel_index_with_small_chunks_equals_sequential(
    testdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xtremehub import FunctionExecutor

    url = _copy(testdata, tmp_path, "test.fa")
    expected = CloudObject.from_path(FASTA, url).preprocess().format.fai_text(CloudObject.from_path(FASTA, url))
    monkeypatch.setattr(fasta_module, "_CHUNK", 1000)  # headers and lines straddle chunk edges
    with FunctionExecutor(workers=2) as fexec:
        co = CloudObject.from_path(FASTA, url).preprocess(fexec, force=True)
    assert co.format.fai_text(co) == expected


@pytest.mark.s3
def test_fasta_on_s3(testdata: Path, s3_root: str, s3_default: Settings) -> None:
    url = s3_root + "ex1.fa"
    storage.put(url, (testdata / "fasta" / "ex1.fa").read_bytes())
    co = CloudObject.from_path(FASTA, url).preprocess()
    assert [(e.name, e.length) for e in FASTA.entries(co)] == [("chr1", 1575), ("chr2", 1584)]
    assert sum(len(b) for s in co.partition(partition_bases, num_slices=5) for _, _, b in s.get()) == 3159


def test_not_fasta(tmp_path: Path) -> None:
    url = str(tmp_path / "x.fa")
    Path(url).write_text("ACGT\n>late header\nACGT\n")
    with pytest.raises(MalformedRecord, match="before the first FASTA header"):
        CloudObject.from_path(FASTA, url).preprocess()


@pytest.mark.parametrize("name", FILES)
def test_bgzip_fasta_matches_samtools_faidx(testdata: Path, tmp_path: Path, name: str) -> None:
    plain = _copy(testdata, tmp_path, name)
    bgz = str(tmp_path / (name + ".gz"))
    pysam.tabix_compress(plain, bgz)
    pysam.faidx(bgz)  # writes .fai and .gzi beside the bgzip file, the reference
    co = CloudObject.from_path(FASTA, bgz, spacing=65536).preprocess()
    assert co["compressed"] is True
    assert co.format.fai_text(co) == Path(bgz + ".fai").read_text()
    with pysam.FastaFile(bgz) as ref:
        truth = {n: ref.fetch(n) for n in ref.references}
    pieces: dict[str, list[tuple[int, str]]] = {}
    for s in co.partition(partition_bases, num_slices=9):
        assert len(pickle.dumps(s)) < 200_000  # a few checkpoints, never the whole index
        for seq_name, start, bases in s.get():
            pieces.setdefault(seq_name, []).append((start, bases))
    assert {n: "".join(b for _, b in sorted(p)) for n, p in pieces.items()} == truth


def test_single_member_gzip_fasta(testdata: Path, tmp_path: Path) -> None:
    plain = (testdata / "fasta" / "ce.fa").read_bytes()
    url = str(tmp_path / "ce.fa.gz")
    Path(url).write_bytes(gzip.compress(plain))
    co = CloudObject.from_path(FASTA, url, spacing=65536).preprocess()
    assert co.format.fai_text(co) == (testdata / "fasta" / "ce.fa.fai").read_text()
    got = {}
    for s in co.partition(partition_sequences, num_batches=3):
        for seq_name, _, bases in s.get():
            got[seq_name] = bases
    with pysam.FastaFile(str(testdata / "fasta" / "ce.fa")) as ref:
        assert got == {n: ref.fetch(n) for n in ref.references}


DUPLICATES = b">a first\nACGTACGT\nAC\n>b\nGGGG\n>a second\nTTTTTTTTTT\n>c\nCC\n>b\nAAA\n"


@pytest.mark.parametrize("compressed", [False, True])
def test_duplicate_names_keep_the_first_like_samtools(tmp_path: Path, compressed: bool) -> None:
    plain = tmp_path / "dup.fa"
    plain.write_bytes(DUPLICATES)
    url = str(plain)
    if compressed:
        url = str(tmp_path / "dup.fa.gz")
        pysam.tabix_compress(str(plain), url)
    pysam.faidx(url)  # the reference: samtools warns and keeps the first of each name
    co = CloudObject.from_path(FASTA, url, spacing=65536).preprocess()
    assert co.format.fai_text(co) == Path(url + ".fai").read_text()
    assert co["num_sequences"] == 3
    assert co["duplicate_names"] == ["a", "b"]
    assert co["duplicates_skipped"] == 2
    with pysam.FastaFile(url) as ref:
        truth = {n: ref.fetch(n) for n in ref.references}
    got = {name: bases for s in co.partition(partition_sequences, num_batches=2) for name, _, bases in s.get()}
    assert got == truth == {"a": "ACGTACGTAC", "b": "GGGG", "c": "CC"}


def test_no_duplicates_says_so(testdata: Path, tmp_path: Path) -> None:
    co = CloudObject.from_path(FASTA, _copy(testdata, tmp_path, "ex1.fa")).preprocess()
    assert (co["duplicate_names"], co["duplicates_skipped"]) == ([], 0)


@pytest.mark.parametrize("compressed", [False, True])
def test_empty_fasta_is_one_clear_error_naming_the_object(tmp_path: Path, compressed: bool) -> None:
    """pysam (samtools faidx) and pyfastx refuse an empty FASTA; so do we, at preprocess()."""
    url = str(tmp_path / ("empty.fa.gz" if compressed else "empty.fa"))
    Path(url).write_bytes(gzip.compress(b"") if compressed else b"")
    with pytest.raises(MalformedRecord, match="empty FASTA") as info:
        CloudObject.from_path(FASTA, url).preprocess()
    assert url in str(info.value)
    assert info.value.offset == 0


def test_sequences_without_bases_partition_to_nothing(tmp_path: Path) -> None:
    url = str(tmp_path / "nobases.fa")
    Path(url).write_bytes(b">a\n>b\n")
    co = CloudObject.from_path(FASTA, url).preprocess()
    assert co["total_length"] == 0
    assert co.partition(partition_bases, num_slices=3) == []


@pytest.mark.s3
@pytest.mark.parametrize("compressed", [False, True])
def test_slices_read_with_the_objects_settings(
    testdata: Path, tmp_path: Path, s3_root: str, s3_settings: Settings, compressed: bool
) -> None:
    """No process-wide S3 settings: index, partition and read with the CloudObject's own."""
    from xtremehub import FunctionExecutor

    source = testdata / "fasta" / "ex1.fa"
    if compressed:
        source = tmp_path / "ex1.fa.gz"
        pysam.tabix_compress(str(testdata / "fasta" / "ex1.fa"), str(source))
    url = s3_root + source.name
    storage.put(url, source.read_bytes(), settings=s3_settings)
    co = CloudObject.from_path(FASTA, url, spacing=65536, settings=s3_settings).preprocess()
    slices = co.partition(partition_bases, num_slices=5)
    assert all(s.access.settings == s3_settings for s in slices)
    with pysam.FastaFile(_copy(testdata, tmp_path, "ex1.fa")) as ref:  # writes a .fai beside its copy
        truth = ref.fetch("chr1") + ref.fetch("chr2")
    assert "".join(b for s in slices for _, _, b in s.get()) == truth
    assert s3_settings.s3.secret_access_key.encode() not in pickle.dumps(slices)  # credentials never travel
    with FunctionExecutor(workers=2, settings=s3_settings) as fexec:  # workers complete them from their own
        parts = fexec.get_result(fexec.map(_bases, slices))
    assert "".join(parts) == truth


def _bases(data_slice: Any) -> str:
    return "".join(b for _, _, b in data_slice.get())
