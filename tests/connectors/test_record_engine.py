"""The checkpointed-record engine on its own: a new line format in this file alone, the mapper
protocol, serial execution without an executor, and old index layouts refused, never misread."""

from __future__ import annotations

import gzip
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pysam
import pytest

from xtremehub import FunctionExecutor, storage
from xtremehub.connectors import CloudObject, Format, Index
from xtremehub.connectors.codecs.line_records import LineSlice, index_lines
from xtremehub.connectors.codecs.mapper import MapperLike, SerialMapper, as_mapper, starmap
from xtremehub.connectors.codecs.record_index import RecordIndex
from xtremehub.connectors.codecs.spans import RecordKey
from xtremehub.connectors.formats.genomics.fastq_records import FastqRecords, header_name
from xtremehub.connectors.genomics import FASTA, VCF, FASTQGZip, partition_reads_batches
from xtremehub.errors import MalformedRecord, StaleIndex

T = TypeVar("T")
R = TypeVar("R")


# -- a toy SAM-text format: the whole connector is the next 40 lines ----------------------------
@dataclass(frozen=True, kw_only=True)
class ToySamSlice(LineSlice):
    """Alignment lines of a SAM text file (header lines start with '@')."""

    comment = b"@"

    @staticmethod
    def key(url: str, offset: int, line: bytes) -> RecordKey:
        fields = line.split(b"\t", 4)
        if len(fields) < 4 or not fields[3].isdigit():
            raise MalformedRecord(url, offset, "a SAM line needs QNAME, FLAG, RNAME and a numeric POS", "uncompressed")
        return fields[2].decode(), int(fields[3])

    def alignments(self) -> list[tuple[str, str, int]]:
        """``(qname, rname, pos)`` of each alignment."""
        return [(f[0].decode(), f[2].decode(), int(f[3])) for f in (ln.split(b"\t", 4) for ln in self.record_lines())]


class ToySam(Format):
    name = "toysam-test"
    index_version = 1

    def build_index(self, co: CloudObject, executor: MapperLike | None) -> Index:
        records, per_reference = index_lines(co.url, co.size, ToySamSlice, executor, spacing=4096, settings=co.settings)
        data, blob = records.to_data()
        attributes = {"num_alignments": records.num_records, "per_reference": per_reference}
        return Index(self.name, self.index_version, {}, attributes, data, blob)


def partition_alignments(co: CloudObject, num_batches: int) -> list[ToySamSlice]:
    records = RecordIndex.of(co.index, co.url)
    return [
        ToySamSlice.planned(co.url, co.size, plan, gz=records.gz, settings=co.settings)
        for plan in records.plans(records.batch_bounds(num_batches), co.size)
    ]


# ------------------------------------------------------------------------------------------------
def _sam_text(n: int) -> tuple[bytes, list[tuple[str, str, int]]]:
    header = b"@HD\tVN:1.6\n@SQ\tSN:chr1\tLN:100000\n@SQ\tSN:chr2\tLN:100000\n"
    rows = [(f"read{i}", "chr1" if i < n // 3 else "chr2", 1 + 7 * i) for i in range(n)]
    body = b"".join(
        b"%s\t0\t%s\t%d\t60\t8M\t*\t0\t0\tACGTACGT\tIIIIIIII\n" % (q.encode(), r.encode(), p) for q, r, p in rows
    )
    return header + body, rows


@pytest.mark.parametrize("compressed", [False, True])
def test_a_toy_line_format_indexes_partitions_and_reads_through_the_engine(tmp_path: Path, compressed: bool) -> None:
    text, rows = _sam_text(3000)
    path = tmp_path / ("toy.sam.gz" if compressed else "toy.sam")
    path.write_bytes(gzip.compress(text, mtime=0) if compressed else text)
    co = CloudObject.from_path(ToySam(), str(path)).preprocess()
    assert co["num_alignments"] == 3000
    assert co["per_reference"] == {"chr1": 1000, "chr2": 2000}
    for n in (1, 2, 5, 64):
        slices = partition_alignments(co, num_batches=n)
        assert len(slices) == n
        assert [a for s in slices for a in s.alignments()] == rows, n
        assert len(set(slices)) == n  # hashable, though they carry the object's settings
    text_in_slices = b"".join(s.get() for s in partition_alignments(co, num_batches=7))
    assert text_in_slices == text[text.index(b"read0") :]


def test_a_toy_format_reports_bad_lines_with_their_offset(tmp_path: Path) -> None:
    text, _ = _sam_text(50)
    bad = text.replace(b"read10\t0\tchr1\t71\t", b"read10\t0\tchr1\tx1\t")
    path = tmp_path / "bad.sam"
    path.write_bytes(bad)
    with pytest.raises(MalformedRecord, match="numeric POS") as info:
        CloudObject.from_path(ToySam(), str(path)).preprocess()
    assert info.value.offset == bad.index(b"read10")
    assert str(path) in str(info.value)


# -- mappers --------------------------------------------------------------------------------------
class CountingMapper:
    """A third-party mapper: anything with map(func, items) -> list."""

    def __init__(self) -> None:
        self.items = 0

    def map(self, func: Callable[[T], R], items: Sequence[T], /) -> list[R]:
        self.items += len(items)
        return [func(item) for item in items]


def test_a_custom_mapper_and_a_function_executor_give_the_same_index(tmp_path: Path) -> None:
    text, _ = _sam_text(3000)
    path = tmp_path / "toy.sam"
    path.write_bytes(text)
    mapper = CountingMapper()
    by_mapper = CloudObject.from_path(ToySam(), str(path), metadata_url=str(tmp_path / "a")).preprocess(mapper)  # type: ignore[arg-type]
    assert mapper.items == -(-len(text) // 4096)  # one call per span
    with FunctionExecutor(workers=2) as fexec:
        by_executor = CloudObject.from_path(ToySam(), str(path), metadata_url=str(tmp_path / "b")).preprocess(fexec)
    serial = CloudObject.from_path(ToySam(), str(path), metadata_url=str(tmp_path / "c")).preprocess()
    assert by_mapper.index.data == by_executor.index.data == serial.index.data
    assert isinstance(as_mapper(None), SerialMapper)


def test_without_an_executor_every_genomics_format_runs_serially_in_process(
    testdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import xtremehub.compute.executor as executor_module

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("preprocess() without an executor must not start one")

    monkeypatch.setattr(executor_module.FunctionExecutor, "__init__", refuse)
    cases: list[tuple[type[Format], Path, dict[str, Any], str, int]] = [
        (FASTQGZip, testdata / "fastq" / "Illimina1.8.fq.gz", {"spacing": 65536}, "num_reads", 10000),
        (VCF, testdata / "vcf" / "test.vcf.gz", {"spacing": 65536}, "num_variants", -1),
        (FASTA, testdata / "fasta" / "ce.fa", {}, "num_sequences", 7),
    ]
    for fmt, path, options, attribute, expected in cases:
        co = CloudObject.from_path(fmt, str(path), metadata_url=str(tmp_path / fmt.name), **options).preprocess()
        if expected >= 0:
            assert co[attribute] == expected
        assert co["checkpoints" if fmt is not FASTA else "num_sequences"] > 1  # several spans: would have mapped


# -- index layout ---------------------------------------------------------------------------------
def test_an_index_of_an_older_version_is_rebuilt_never_misread(testdata: Path, tmp_path: Path) -> None:
    url = str(tmp_path / "r.fq.gz")
    shutil.copy(testdata / "fastq" / "Illimina1.8.fq.gz", url)
    co = CloudObject.from_path(FASTQGZip, url, spacing=65536).preprocess()
    index = co.index
    # what version 1 wrote: the same columns, no "layout" key
    old_data = {k: v for k, v in index.data.items() if k not in ("layout", "gzip_members")}
    old = Index(index.format, 1, index.identity, index.attributes, old_data, index.blob)
    storage.put(co.metadata_url, old.to_bytes())
    fresh = CloudObject.from_path(FASTQGZip, url, spacing=65536)
    with pytest.raises(StaleIndex, match="version 1"):
        fresh.partition(partition_reads_batches, num_batches=2)
    assert not fresh.is_preprocessed()
    assert fresh.preprocess()["num_reads"] == 10000  # rebuilt
    assert fresh.index.data["layout"] == "xhub-records/1"


def test_an_unknown_record_layout_raises_stale_index(testdata: Path, tmp_path: Path) -> None:
    url = str(tmp_path / "r.fq.gz")
    shutil.copy(testdata / "fastq" / "Illimina1.8.fq.gz", url)
    co = CloudObject.from_path(FASTQGZip, url, spacing=65536).preprocess()
    index = co.index
    future = Index(
        index.format,
        index.version,
        index.identity,
        index.attributes,
        {**index.data, "layout": "xhub-records/9"},
        index.blob,
    )
    storage.put(co.metadata_url, future.to_bytes())
    with pytest.raises(StaleIndex, match=r"xhub-records/9.*preprocess\(force=True\)"):
        CloudObject.from_path(FASTQGZip, url, spacing=65536).partition(partition_reads_batches, num_batches=2)


def test_record_index_round_trips_through_its_documented_layout(testdata: Path, tmp_path: Path) -> None:
    co = CloudObject.from_path(
        VCF, str(testdata / "vcf" / "test.vcf.gz"), metadata_url=str(tmp_path / "i"), spacing=65536
    ).preprocess()
    records = RecordIndex.of(co.index, co.url)
    data, blob = records.to_data()
    assert RecordIndex.from_data(data, blob, co.url) == records
    documented = {"layout", "gz", "text_size", "num_records", "bit_offset", "uncompressed", "window_len"}
    documented |= {"record_number", "record_start", "first_key", "gzip_members"}
    assert set(data) == documented
    assert records.gz
    assert records.num_records == co["num_variants"]
    with pysam.VariantFile(str(testdata / "vcf" / "test.vcf.gz")) as vf:
        first = next(iter(vf))
    assert records.first_key[0] == (first.chrom, first.pos)


def _arity(*args: Any) -> int:
    return len(args)


def test_mappers_pass_each_item_as_one_argument_even_a_tuple() -> None:
    """Executors unpack a tuple item into arguments; a mapper must not, or serial and mapped runs differ."""
    items = [(1, 2), (3,), "x"]
    assert as_mapper(None).map(_arity, items) == [1, 1, 1]
    with FunctionExecutor(workers=1) as fexec:
        assert as_mapper(fexec).map(_arity, items) == [1, 1, 1]
        assert starmap(as_mapper(fexec), _arity, [(1, 2), (3,)]) == [2, 1]
    assert starmap(as_mapper(None), _arity, [(1, 2), (3,)]) == [2, 1]


def test_fastq_records_fed_from_one_reused_buffer_keep_nothing_of_it() -> None:
    """The one pass feeds views of buffers it reuses: records cut between two pieces come out whole
    and the counts match feeding fresh bytes, though the buffer is overwritten after every feed."""
    rng = random.Random(11)
    text = b"".join(b"@r%d x\n%s\n+\n%s\n" % (i, b"A" * (n := rng.randint(1, 90)), b"I" * n) for i in range(2000))
    fresh, reused = FastqRecords("mem://x"), FastqRecords("mem://x")
    buf = bytearray(700)
    names: list[str] = []
    for at in range(0, len(text), 700):
        piece = text[at : at + 700]
        fresh.feed(piece)
        buf[: len(piece)] = piece
        view = memoryview(buf)[: len(piece)]
        for block in reused.feed(view):
            assert bytes(block.data) == text[int(block.starts[0]) : int(block.starts[0]) + len(block.data)]
            names.append(header_name(block.data))
        view.release()
        buf[:] = b"\0" * len(buf)  # what the next piece will do to it
        assert (reused.records, reused.bases) == (fresh.records, fresh.bases)
    assert reused.finish() == []
    assert fresh.finish() == []
    assert (reused.records, reused.bases) == (fresh.records, fresh.bases)
    assert reused.records == 2000
    assert names[0] == "r0"
    assert len(names) > 100
