"""The one-pass preprocessing (rapidgzip) in a child process and its file object over ranged GETs."""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.connectors import CloudObject
from xtremehub.connectors.codecs import gzip_child, gzip_stream
from xtremehub.connectors.codecs.source import AheadReader
from xtremehub.connectors.genomics import FASTQGZip, partition_reads_batches
from xtremehub.errors import CorruptData

SPACING = 64 * 1024


def _index(url: str, settings: Settings | None = None) -> tuple[dict[str, object], dict[str, object], bytes]:
    co = CloudObject.from_path(FASTQGZip, url, spacing=SPACING, settings=settings).preprocess(force=True)
    attributes = {k: v for k, v in co.index.attributes.items() if k != "preprocess_seconds"}
    return attributes, co.index.data, co.index.blob


@pytest.mark.parametrize("name", ["Illimina1.8.fq.gz", "multimember_pigz.fastq.gz"])
def test_child_process_pass_indexes_exactly_like_the_thread(
    testdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    url = str(tmp_path / name)
    Path(url).write_bytes((testdata / "fastq" / name).read_bytes())
    children = []
    real = gzip_stream._in_child

    def spy(job: object, scan: object) -> bytes | None:
        children.append(real(job, scan))  # type: ignore[arg-type]
        return children[-1]

    monkeypatch.setattr(gzip_stream, "_in_child", spy)
    monkeypatch.setattr(gzip_stream, "PROCESS_MIN", 0)
    in_child = _index(url)
    assert children  # the child ran...
    assert children[0] is not None  # ... and sent its index
    monkeypatch.setenv("XHUB_GZIP_CHILD", "0")
    assert _index(url) == in_child
    assert len(children) == 1  # the second run stayed in this process


def test_child_process_pass_reads_s3_with_the_objects_settings(
    testdata: Path, s3_root: str, s3_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = s3_root + "one-pass.fq.gz"
    storage.put(url, (testdata / "fastq" / "Illimina1.8.fq.gz").read_bytes(), settings=s3_settings)
    monkeypatch.setattr(gzip_stream, "PROCESS_MIN", 0)
    attributes, _, _ = _index(url, s3_settings)
    co = CloudObject.from_path(FASTQGZip, url, spacing=SPACING, settings=s3_settings).preprocess()
    slices = co.partition(partition_reads_batches, num_batches=3)
    assert sum(s.num_reads for s in slices) == attributes["num_reads"] > 0


def test_child_process_pass_on_corrupt_data_falls_back_and_names_the_object(
    testdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = bytearray((testdata / "fastq" / "Illimina1.8.fq.gz").read_bytes())
    for i in range(400_000, 400_064):
        raw[i] ^= 0xFF
    url = str(tmp_path / "bad.fq.gz")
    Path(url).write_bytes(bytes(raw))
    monkeypatch.setattr(gzip_stream, "PROCESS_MIN", 0)
    with pytest.raises(CorruptData) as info:
        CloudObject.from_path(FASTQGZip, url, spacing=SPACING).preprocess()
    assert url in str(info.value)


def test_ahead_reader_serves_back_seeks_without_fetching_twice() -> None:
    data = random.Random(3).randbytes(100_000)
    storage.put("mem://ahead/x", data)
    with AheadReader("mem://ahead/x", len(data), part=4096) as fh:
        pos = 0
        rnd = random.Random(4)
        while pos < len(data):
            back = max(0, pos - rnd.randint(0, 8000))  # up to two parts behind, like rapidgzip
            fh.seek(back)
            near = fh.read(100)  # a raw read stops at the end of a part
            assert near == data[back : back + len(near)]
            assert near
            fh.seek(pos)
            got = fh.read(3000)
            assert got == data[pos : pos + len(got)]
            assert got
            pos += len(got)
        assert fh.fetched == len(data)
        fh.seek(0)  # far back: fetched again, and still right
        assert fh.read(10) == data[:10]
        assert fh.fetched == len(data) + 3 * 4096  # that part and the two after it


class _CountingScan:
    """The smallest record scan: counts the text it is fed (the one pass needs nothing else here)."""

    def __init__(self) -> None:
        self.fed = 0

    def announce(self, offsets: object) -> None:
        pass

    def feed(self, chunk: bytes) -> None:
        self.fed += len(chunk)

    def finish(self) -> None:
        pass

    def first_record(self, offset: int) -> tuple[int, int | None, None]:
        return 0, None, None


@pytest.mark.parametrize("child", [True, False], ids=["child", "thread"])
def test_one_pass_of_an_object_shorter_than_its_size_fails_naming_where_it_ends(
    testdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, child: bool
) -> None:
    """The object changed or was cut between reading its size and streaming it: both routes say so
    (the child's used to index the shorter object as if whole)."""
    data = (testdata / "fastq" / "multimember_pigz.fastq.gz").read_bytes()
    url = str(tmp_path / "short.fq.gz")
    Path(url).write_bytes(data)
    monkeypatch.setattr(gzip_stream, "PROCESS_MIN", 0)
    monkeypatch.setenv("XHUB_GZIP_CHILD", "1" if child else "0")
    with pytest.raises(gzip_stream.StreamPassFailed, match=rf"object ends early \(expected {len(data) + 3} bytes\)"):
        gzip_stream.checkpoints_and_records(url, len(data) + 3, _CountingScan(), spacing=SPACING)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def big_fastq_gz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~20 MB of FASTQ.gz (five 4 MiB parts to the child), made once."""
    path = tmp_path_factory.mktemp("one-pass") / "big.fq.gz"
    rng = random.Random(18)
    with gzip.open(path, "wb", compresslevel=1) as fh:
        for _ in range(14):
            seq = rng.randbytes(5_000_000).translate(bytes.maketrans(bytes(range(256)), b"ACGT" * 64))
            fh.write(b"".join(b"@r\n%s\n+\n%s\n" % (seq[i : i + 100], b"I" * 100) for i in range(0, len(seq), 100)))
    return path


def test_child_process_pass_with_parallel_decoding_reads_back_within_its_window(
    big_fastq_gz: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rapidgzip decoding on 16 threads seeks back further than two parts: the child keeps enough
    (before, the pass failed and fell back to two passes, doubling the work)."""
    monkeypatch.setattr(gzip_stream, "PROCESS_MIN", 0)
    size = big_fastq_gz.stat().st_size
    assert size > 4 * gzip_stream._PART
    monkeypatch.setenv("XHUB_GZIP_THREADS", "16")
    scan = _CountingScan()
    result = gzip_stream.checkpoints_and_records(str(big_fastq_gz), size, scan, spacing=8 << 20)  # type: ignore[arg-type]
    assert scan.fed == len(gzip.decompress(big_fastq_gz.read_bytes()))
    assert len(result.points) > 1


class _HashingScan(_CountingScan):
    """Hashes the text it is fed; slow on its first pieces, so the child fills every shared buffer and waits."""

    def __init__(self) -> None:
        super().__init__()
        self.digest = hashlib.sha256()

    def feed(self, chunk: bytes) -> None:
        if self.fed < 3 * gzip_child.READ:
            time.sleep(0.05)
        super().feed(chunk)
        self.digest.update(chunk)


def test_child_process_pass_hands_over_the_text_intact_through_its_reused_buffers(
    big_fastq_gz: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child writes the text into a few buffers shared with this process and reuses each only once
    this process has scanned it: the text fed to the scan is the object's, byte for byte."""
    monkeypatch.setattr(gzip_stream, "PROCESS_MIN", 0)
    text = gzip.decompress(big_fastq_gz.read_bytes())
    assert len(text) > 4 * gzip_stream._SLOTS * gzip_child.READ  # the ring goes round several times
    scan = _HashingScan()
    size = big_fastq_gz.stat().st_size
    gzip_stream.checkpoints_and_records(str(big_fastq_gz), size, scan, spacing=8 << 20)  # type: ignore[arg-type]
    assert scan.fed == len(text)
    assert scan.digest.digest() == hashlib.sha256(text).digest()


class _KeepingScan(_CountingScan):
    """A scan that wrongly keeps a view of a piece of text it was fed (a slice, or a NumPy array)."""

    def __init__(self, keep: str) -> None:
        super().__init__()
        self.keep = keep
        self.kept: list[object] = []

    def feed(self, chunk: bytes) -> None:
        if self.fed >= gzip_child.READ and not self.kept:
            view = memoryview(chunk)[:16]
            self.at = self.fed  # where the kept bytes are in the text
            self.kept.append(np.frombuffer(view, dtype=np.uint8) if self.keep == "numpy" else view)
        super().feed(chunk)


@pytest.mark.parametrize("keep", ["slice", "numpy"])
def test_child_process_pass_stops_when_the_scan_keeps_a_view_of_a_shared_buffer(
    big_fastq_gz: Path, monkeypatch: pytest.MonkeyPatch, keep: str
) -> None:
    """The child reuses each text buffer once it is handed back: a scan still holding a view of one
    would see its text change underneath. The pass stops instead (index_records then falls back to
    two passes), and what the scan kept still reads the text it was given."""
    monkeypatch.setattr(gzip_stream, "PROCESS_MIN", 0)
    scan = _KeepingScan(keep)
    size = big_fastq_gz.stat().st_size
    with pytest.raises(gzip_stream.StreamPassFailed, match="kept a view of a text buffer"):
        gzip_stream.checkpoints_and_records(str(big_fastq_gz), size, scan, spacing=8 << 20)  # type: ignore[arg-type]
    text = gzip.decompress(big_fastq_gz.read_bytes())
    assert bytes(scan.kept[0]) == text[scan.at : scan.at + 16]  # not overwritten by a later piece


def _spy_children(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """The child processes the one pass starts, as they start."""
    started: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(real(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(gzip_stream.subprocess, "Popen", popen)
    return started


def test_child_process_pass_without_memfd_shares_an_unlinked_file(
    big_fastq_gz: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where ``memfd_create`` is missing or refused, the shared buffers are an unlinked temporary
    file: the text still arrives intact, through the child (not the thread route)."""

    def refused(name: str) -> int:
        raise OSError(errno.ENOSYS, "memfd_create refused")

    monkeypatch.setattr(gzip_stream, "PROCESS_MIN", 0)
    monkeypatch.setattr(os, "memfd_create", refused)
    children = _spy_children(monkeypatch)
    scan = _HashingScan()
    size = big_fastq_gz.stat().st_size
    gzip_stream.checkpoints_and_records(str(big_fastq_gz), size, scan, spacing=8 << 20)  # type: ignore[arg-type]
    text = gzip.decompress(big_fastq_gz.read_bytes())
    assert len(children) == 1
    assert scan.digest.digest() == hashlib.sha256(text).digest()


class _StoppingScan(_CountingScan):
    """Stops (SIGSTOP) the inflating child at its first piece: a child that hangs without dying."""

    def __init__(self, children: list[subprocess.Popen[bytes]]) -> None:
        super().__init__()
        self.children = children

    def feed(self, chunk: bytes) -> None:
        if not self.fed:
            os.kill(self.children[0].pid, signal.SIGSTOP)
        super().feed(chunk)


def test_a_child_that_stops_answering_is_given_up_not_waited_for(
    big_fastq_gz: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gzip_stream, "PROCESS_MIN", 0)
    monkeypatch.setattr(gzip_stream, "_IDLE", 1.0)
    children = _spy_children(monkeypatch)
    size = big_fastq_gz.stat().st_size
    started = time.monotonic()
    with pytest.raises(gzip_stream.StreamPassFailed, match="no word from the inflating process"):
        gzip_stream.checkpoints_and_records(str(big_fastq_gz), size, _StoppingScan(children), spacing=8 << 20)  # type: ignore[arg-type]
    assert time.monotonic() - started < 30
    assert children[0].wait(timeout=10) == -signal.SIGKILL  # stopped, then killed: nothing left behind


def test_one_pass_reads_a_bgzf_object_of_many_parts_in_a_thread(
    big_fastq_gz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rapidgzip indexes BGZF from its block headers, reading ahead and back over the whole object,
    which the child, fed the object once in order, cannot serve: a BGZF object goes to the thread
    route at once (before, the child failed on every BGZF object of more than three parts, and
    preprocessing fell back to two passes after a wasted partial one)."""
    import pysam  # reference tool (test extra): writes BGZF as bgzip does

    text = gzip.decompress(big_fastq_gz.read_bytes())
    path = tmp_path / "big.fq.bgz"
    with pysam.BGZFile(str(path), "wb") as fh:
        fh.write(text)
    size = path.stat().st_size
    assert size > 4 * gzip_stream._PART
    monkeypatch.setattr(gzip_stream, "PROCESS_MIN", 0)
    children = _spy_children(monkeypatch)
    scan = _HashingScan()
    result = gzip_stream.checkpoints_and_records(str(path), size, scan, spacing=8 << 20)  # type: ignore[arg-type]
    assert children == []  # no child started
    assert scan.digest.digest() == hashlib.sha256(text).digest()
    assert len(result.points) > 1
    plain = _HashingScan()  # a plain gzip object of the same text still goes through the child
    gzip_stream.checkpoints_and_records(str(big_fastq_gz), big_fastq_gz.stat().st_size, plain, spacing=8 << 20)  # type: ignore[arg-type]
    assert len(children) == 1
    assert plain.digest.digest() == scan.digest.digest()
