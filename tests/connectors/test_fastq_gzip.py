"""FASTQ.gz connector on the real files in ../shared/testdata, on local disk and on real S3."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import itertools
import pickle
import shutil
import zlib
from pathlib import Path
from typing import Any

import pysam
import pytest

from xtremehub import FunctionExecutor, storage
from xtremehub.config import Settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.genomics import (
    FASTQGZip,
    FASTQGZipSlice,
    partition_bytes_per_batch,
    partition_reads_batches,
    partition_reads_per_batch,
)
from xtremehub.errors import CorruptData, MalformedRecord, NotPreprocessed, StaleIndex, TruncatedData

FILES = ["Illimina1.8.fq.gz", "sample.fastq.bgz", "multimember_pigz.fastq.gz", "multiblock.fastq.gz"]
SPACING = 64 * 1024  # small checkpoints spacing: these files are small


@pytest.mark.parametrize("name", FILES)
def test_index_and_every_partitioning_cover_the_file_exactly(
    testdata: Path, facts: dict[str, Any], where: Any, name: str
) -> None:
    fact = facts[f"fastq/{name}"]
    url = where(testdata / "fastq" / name)
    co = CloudObject.from_path(FASTQGZip, url, spacing=SPACING).preprocess()
    assert co["num_reads"] == fact["reads"]
    assert co["num_bases"] == fact["total_bases"]
    assert co["uncompressed_size"] == fact["uncompressed_bytes"]
    expected_flavour = (
        "bgzf" if fact["bgzf_members"] else ("multi-member" if fact["gzip_members"] > 1 else "single-member")
    )
    assert co["gzip_flavour"] == expected_flavour
    # more batches than reads where that stays cheap (each slice decodes from a checkpoint)
    for n in (1, 2, 3, 7, 64 if fact["reads"] > 100 else fact["reads"] + 5):
        slices = co.partition(partition_reads_batches, num_batches=n)
        assert len(slices) == min(n, fact["reads"])
        assert [s.first_read for s in slices] == sorted(s.first_read for s in slices)
        assert sum(s.num_reads for s in slices) == fact["reads"]
        parts = [s.get() for s in slices]
        assert hashlib.md5(b"".join(parts)).hexdigest() == fact["md5_uncompressed"], n
        for s, part in zip(slices, parts, strict=True):
            assert part.count(b"\n") == 4 * s.num_reads  # whole records only
    for strategy, params in [
        (partition_reads_per_batch, {"reads_per_batch": 333}),
        (partition_bytes_per_batch, {"bytes_per_batch": 100_000}),
    ]:
        text = b"".join(s.get() for s in co.partition(strategy, **params))
        assert hashlib.md5(text).hexdigest() == fact["md5_uncompressed"]


def test_records_match_pysam(testdata: Path, tmp_path: Path) -> None:
    path = testdata / "fastq" / "Illimina1.8.fq.gz"
    co = CloudObject.from_path(FASTQGZip, str(path), metadata_url=str(tmp_path / "idx"), spacing=SPACING).preprocess()
    ours = [rec for s in co.partition("reads_batches", num_batches=5) for rec in s.iter_records()]
    with pysam.FastxFile(str(path)) as fh:
        theirs = [(r.name, r.sequence, r.quality) for r in fh]
    assert len(ours) == len(theirs) == 10000
    assert [(h.split(b" ")[0].decode(), s.decode(), q.decode()) for h, s, q in ours] == theirs


@pytest.mark.parametrize("name", FILES)
def test_record_blocks_hold_the_reads_with_offsets_and_lengths(testdata: Path, tmp_path: Path, name: str) -> None:
    """``iter_blocks()`` against pysam: per block, its reads, their offsets in the text and their lengths."""
    path = testdata / "fastq" / name
    co = CloudObject.from_path(FASTQGZip, str(path), metadata_url=str(tmp_path / "i"), spacing=SPACING).preprocess()
    with pysam.FastxFile(str(path)) as fh:
        theirs = [len(r.sequence) for r in fh]
    text = gzip.decompress(path.read_bytes())
    lengths: list[int] = []
    for s in co.partition(partition_reads_batches, num_batches=7):  # slices start and end inside blocks
        blocks = list(s.iter_blocks())
        assert sum(len(b) for b in blocks) == s.num_reads
        assert b"".join(b.data for b in blocks) == s.get()
        for b in blocks:
            assert b.first_record == len(lengths)  # the file's number of its first read
            assert all(text[int(o) : int(o) + 1] == b"@" for o in b.starts)
            assert text[int(b.starts[0]) : int(b.starts[0]) + len(b.data)] == b.data
            assert b.bases == int(b.seq_lengths.sum())
            lengths += b.seq_lengths.tolist()
    assert lengths == theirs


def test_a_slice_of_no_reads_yields_nothing(testdata: Path, tmp_path: Path) -> None:
    path = testdata / "fastq" / "Illimina1.8.fq.gz"
    co = CloudObject.from_path(FASTQGZip, str(path), metadata_url=str(tmp_path / "i"), spacing=SPACING).preprocess()
    empty = dataclasses.replace(co.partition(partition_reads_batches, num_batches=3)[1], count=0)
    assert (list(empty.iter_blocks()), list(empty.iter_chunks()), empty.get()) == ([], [], b"")


def test_slices_are_small_picklable_and_carry_no_whole_index(testdata: Path, tmp_path: Path) -> None:
    co = CloudObject.from_path(
        FASTQGZip, str(testdata / "fastq" / "Illimina1.8.fq.gz"), metadata_url=str(tmp_path / "i"), spacing=SPACING
    ).preprocess()
    index_size = len(storage.get(co.metadata_url))
    for s in co.partition(partition_reads_batches, num_batches=4):
        blob = pickle.dumps(s)
        assert len(blob) < index_size / 2
        assert pickle.loads(blob).get() == s.get()


def test_map_over_slices_with_the_executor(testdata: Path, tmp_path: Path) -> None:
    co = CloudObject.from_path(
        FASTQGZip, str(testdata / "fastq" / "sample.fastq.bgz"), metadata_url=str(tmp_path / "i"), spacing=SPACING
    ).preprocess()
    slices = co.partition(partition_reads_batches, num_batches=4)
    with FunctionExecutor(workers=2) as fexec:
        counts = fexec.get_result(fexec.map(_count_reads, slices))
    assert sum(counts) == 2000
    assert counts == [s.num_reads for s in slices]


def _count_reads(data_slice: FASTQGZipSlice) -> int:
    return sum(1 for _ in data_slice.iter_records())


def test_preprocess_is_a_noop_when_fresh_and_index_sits_beside_the_data(testdata: Path, tmp_path: Path) -> None:
    url = str(tmp_path / "r.fq.gz")
    shutil.copy(testdata / "fastq" / "multimember_pigz.fastq.gz", url)
    before = Path(url).read_bytes()
    co = CloudObject.from_path(FASTQGZip, url, spacing=SPACING)
    assert not co.is_preprocessed()
    co.preprocess()
    assert co.metadata_url == str(tmp_path / ".xhub" / "r.fq.gz.fastq_gzip.xhidx")
    mtime = Path(co.metadata_url).stat().st_mtime_ns
    CloudObject.from_path(FASTQGZip, url, spacing=SPACING).preprocess()
    assert Path(co.metadata_url).stat().st_mtime_ns == mtime  # not rebuilt
    assert Path(url).read_bytes() == before  # data untouched
    index_size = Path(co.metadata_url).stat().st_size
    assert index_size < len(before)


def test_stale_index_is_detected_not_misread(testdata: Path, tmp_path: Path) -> None:
    url = str(tmp_path / "r.fq.gz")
    shutil.copy(testdata / "fastq" / "multimember_pigz.fastq.gz", url)
    co = CloudObject.from_path(FASTQGZip, url, spacing=SPACING).preprocess()
    shutil.copy(testdata / "fastq" / "sample.fastq.bgz", url)  # the object changes under the index
    fresh = CloudObject.from_path(FASTQGZip, url, spacing=SPACING)
    with pytest.raises(StaleIndex, match="changed"):
        fresh.partition(partition_reads_batches, num_batches=2)
    assert fresh.preprocess()["num_reads"] == 2000  # re-indexed
    assert co.url == fresh.url


def test_partition_before_preprocess(testdata: Path, tmp_path: Path) -> None:
    co = CloudObject.from_path(
        FASTQGZip, str(testdata / "fastq" / "multiblock.fastq.gz"), metadata_url=str(tmp_path / "x")
    )
    with pytest.raises(NotPreprocessed, match="preprocess"):
        co.partition(partition_reads_batches, num_batches=2)


def _gz(text: bytes) -> bytes:
    return gzip.compress(text, mtime=0)


def test_truncated_gzip(testdata: Path, tmp_path: Path) -> None:
    raw = (testdata / "fastq" / "Illimina1.8.fq.gz").read_bytes()
    url = str(tmp_path / "cut.fq.gz")
    Path(url).write_bytes(raw[: len(raw) // 2])
    with pytest.raises((TruncatedData, CorruptData)) as info:
        CloudObject.from_path(FASTQGZip, url, spacing=SPACING).preprocess()
    assert url in str(info.value)


def test_corrupt_deflate_data(testdata: Path, tmp_path: Path) -> None:
    raw = bytearray((testdata / "fastq" / "Illimina1.8.fq.gz").read_bytes())
    for i in range(400_000, 400_064):
        raw[i] ^= 0xFF
    url = str(tmp_path / "bad.fq.gz")
    Path(url).write_bytes(bytes(raw))
    with pytest.raises(CorruptData) as info:
        CloudObject.from_path(FASTQGZip, url, spacing=SPACING).preprocess()
    assert url in str(info.value)


def test_record_without_plus_line(tmp_path: Path) -> None:
    good = b"".join(b"@r%d\nACGT\n+\nIIII\n" % i for i in range(100))
    broken = good.replace(b"@r57\nACGT\n+\n", b"@r57\nACGT\n", 1)
    url = str(tmp_path / "noplus.fq.gz")
    Path(url).write_bytes(_gz(broken))
    with pytest.raises(MalformedRecord, match=r"record 57 has no '\+'") as info:
        CloudObject.from_path(FASTQGZip, url).preprocess()
    assert info.value.offset == good.index(b"@r57")
    assert url in str(info.value)


def test_quality_lines_starting_with_at_and_mixed_lengths(tmp_path: Path) -> None:
    records = [b"@read%d\n%s\n+\n%s\n" % (i, b"ACGT" * (1 + i % 9), b"@" * 4 * (1 + i % 9)) for i in range(5000)]
    text = b"".join(records)
    url = str(tmp_path / "at.fq.gz")
    # many members, boundaries falling anywhere inside records
    Path(url).write_bytes(b"".join(_gz(text[i : i + 7001]) for i in range(0, len(text), 7001)))
    co = CloudObject.from_path(FASTQGZip, url, spacing=SPACING).preprocess()
    assert co["num_reads"] == 5000
    for n in (1, 3, 7, 64):
        slices = co.partition(partition_reads_batches, num_batches=n)
        assert b"".join(s.get() for s in slices) == text


def test_compressed_bytes_fetched_stay_close_to_object_size(testdata: Path, tmp_path: Path) -> None:
    from xtremehub.connectors.codecs.source import RangeSource

    co = CloudObject.from_path(
        FASTQGZip, str(testdata / "fastq" / "Illimina1.8.fq.gz"), metadata_url=str(tmp_path / "i"), spacing=SPACING
    ).preprocess()
    slices = co.partition(partition_reads_batches, num_batches=8)
    fetched = 0
    for s in slices:
        src = RangeSource(s.url, s.object_size, s.checkpoint.byte_offset, s.planned_end)
        assert b"".join(b.data for b in s._blocks(src)) == s.get()
        fetched += src.fetched
    # 15 checkpoints for 8 slices: boundaries that cannot snap to a checkpoint decode up to
    # one spacing twice; with many checkpoints per slice (big files) see bench/ (<= 1.05).
    assert fetched / co.size < 1.2
    assert zlib.crc32(b"".join(s.get() for s in slices)) == zlib.crc32(gzip.decompress(Path(co.url).read_bytes()))


@pytest.mark.parametrize("name", FILES)
def test_counts_match_pyfastx(testdata: Path, tmp_path: Path, name: str) -> None:
    import pyfastx

    path = testdata / "fastq" / name
    co = CloudObject.from_path(FASTQGZip, str(path), metadata_url=str(tmp_path / "i"), spacing=SPACING).preprocess()
    reads = bases = 0
    for _name, seq, _qual in pyfastx.Fastx(str(path)):
        reads += 1
        bases += len(seq)
    assert (co["num_reads"], co["num_bases"]) == (reads, bases)
    slices = co.partition(partition_reads_batches, num_batches=3)
    assert sum(sum(len(seq) for _, seq, _ in s.iter_records()) for s in slices) == bases


def _random_fastq(n: int, seed: int, newline: bytes = b"\n") -> bytes:
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 160, n)
    seqs = rng.choice(np.frombuffer(b"ACGT", np.uint8), int(lengths.sum())).tobytes()
    quals = rng.choice(np.frombuffer(b"@ABCDEFGHIJ#+", np.uint8), int(lengths.sum())).tobytes()
    out, at = [], 0
    for i, length in enumerate(lengths.tolist()):
        seq, qual = seqs[at : at + length], quals[at : at + length]
        out.append(b"@r%d desc%s%s%s+%s%s%s" % (i, newline, seq, newline, newline, qual, newline))
        at += length
    return b"".join(out)


def test_crlf_line_endings_count_bases_like_pysam(tmp_path: Path) -> None:
    url = str(tmp_path / "crlf.fq.gz")
    Path(url).write_bytes(_gz(_random_fastq(6000, 11, b"\r\n")))
    co = CloudObject.from_path(FASTQGZip, url, spacing=SPACING).preprocess()
    with pysam.FastxFile(url) as fh:
        theirs = [(r.name, r.sequence, r.quality) for r in fh]
    assert co["num_reads"] == len(theirs) == 6000
    assert co["num_bases"] == sum(len(seq) for _, seq, _ in theirs)
    assert co["first_read"] == "r0"
    assert co["checkpoints"] > 3
    ours = [rec for s in co.partition(partition_reads_batches, num_batches=5) for rec in s.iter_records()]
    assert [(h.split(b" ")[0].decode(), s.decode(), q.decode()) for h, s, q in ours] == theirs


@pytest.mark.parametrize("flavour", ["single-member", "bgzf"])
def test_checkpoint_spacing_is_in_uncompressed_bytes(tmp_path: Path, flavour: str) -> None:
    """Also for BGZF, whose every 64 KiB member zran makes a point of, whatever the spacing."""
    text = _random_fastq(40_000, 12)  # ~8 MiB, compresses about 3:1
    url = str(tmp_path / "spaced.fq.gz")
    if flavour == "bgzf":
        (tmp_path / "spaced.fq").write_bytes(text)
        pysam.tabix_compress(str(tmp_path / "spaced.fq"), url)
    else:
        Path(url).write_bytes(_gz(text))
    spacing = 256 * 1024
    co = CloudObject.from_path(FASTQGZip, url, spacing=spacing).preprocess()
    starts = co.index.data["uncompressed"]  # checkpoints' uncompressed offsets (index layout)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert spacing <= min(gaps) <= max(gaps) < 2 * spacing  # uncompressed bytes, not one per BGZF member
    assert co["checkpoints"] >= len(text) // (2 * spacing)
    assert co["gzip_flavour"] == flavour
    assert b"".join(s.get() for s in co.partition(partition_reads_batches, num_batches=5)) == text


@pytest.mark.s3
def test_explicit_settings_reach_every_read(testdata: Path, s3_root: str, s3_settings: Settings) -> None:
    """No process-wide S3 settings: the object's own settings index, partition and read it."""
    url = s3_root + "r.fq.gz"
    storage.put(url, (testdata / "fastq" / "sample.fastq.bgz").read_bytes(), settings=s3_settings)
    co = CloudObject.from_path(FASTQGZip, url, spacing=SPACING, settings=s3_settings).preprocess()
    slices = co.partition(partition_reads_batches, num_batches=3)
    assert all(s.access.settings == s3_settings for s in slices)
    assert sum(1 for s in slices for _ in s.iter_records()) == co["num_reads"] == 2000
    assert s3_settings.s3.secret_access_key.encode() not in pickle.dumps(slices)  # credentials never travel
    with FunctionExecutor(workers=2, settings=s3_settings) as fexec:  # workers complete them from their own
        assert fexec.get_result(fexec.map(_count_reads, slices)) == [s.num_reads for s in slices]


def test_a_range_source_over_an_object_shorter_than_its_size_names_the_offset() -> None:
    from xtremehub.connectors.codecs.source import RangeSource
    from xtremehub.errors import TruncatedData

    storage.put("mem://short-object/x", b"a" * 25)
    src = RangeSource("mem://short-object/x", 29, 0, 29)  # the object was cut after it was sized
    with pytest.raises(TruncatedData, match="ends before byte 29") as info:
        src.read()
    assert info.value.offset == 25
    src.close()
