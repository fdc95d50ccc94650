"""The one pass's readers: the object piped into the child (seekable back a little), the index thinned
there, and the parent-side reader streaming parts from S3."""

from __future__ import annotations

import io
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import rapidgzip

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.connectors.codecs import gzip_stream
from xtremehub.connectors.codecs.gzip_child import PipeReader
from xtremehub.connectors.codecs.gzip_index import parse_gzidx
from xtremehub.connectors.codecs.source import AheadReader


@pytest.mark.parametrize("name", ["Illimina1.8.fq.gz", "multimember_pigz.fastq.gz", "sample.fastq.bgz"])
@pytest.mark.parametrize("spacing", [64 * 1024, 1024 * 1024])
def test_thinned_index_parses_exactly_like_the_whole_one(testdata: Path, name: str, spacing: int) -> None:
    raw = (testdata / "fastq" / name).read_bytes()
    with rapidgzip.RapidgzipFile(io.BytesIO(raw), parallelization=1, chunk_size=16 * 1024) as gz:
        while gz.read(1 << 20):
            pass
        out = io.BytesIO()
        gz.export_index(out)
    blob = out.getvalue()
    thin = gzip_stream.thin_gzidx(blob, spacing)
    assert parse_gzidx(thin, "x", spacing) == parse_gzidx(blob, "x", spacing)
    assert len(thin) < len(blob)
    assert gzip_stream.thin_gzidx(b"not an index", spacing) == b"not an index"


def test_pipe_reader_serves_reads_and_back_seeks_from_bytes_sent(pipe: _Pipe) -> None:
    data = random.Random(5).randbytes(50_000)
    recv, send = pipe

    def sender() -> None:  # as the parent's sender thread: blocks while the pipe is full
        for at in range(0, len(data), 3000):  # writes need not line up with the parts
            send.write(data[at : at + 3000])
        send.close()

    threading.Thread(target=sender, daemon=True).start()
    fh = PipeReader(recv, len(data), part=4096, behind=gzip_stream._BEHIND)
    assert fh.seek(0, io.SEEK_END) == len(data)
    _read_with_back_seeks(fh, data, 6)
    assert fh.read(10) == b""
    fh.seek(0)
    with pytest.raises(OSError, match="parts behind"):
        fh.read(10)


def test_pipe_reader_reports_an_object_cut_short(pipe: _Pipe) -> None:
    recv, send = pipe
    send.write(b"x" * 4096)
    send.close()
    fh = PipeReader(recv, 10_000, part=4096, behind=gzip_stream._BEHIND)
    assert fh.read(5000) == b"x" * 4096
    with pytest.raises(OSError, match="ends at byte 4096 of 10000"):
        fh.read(10)


def test_ahead_reader_on_s3_streams_parts_and_serves_back_seeks(s3_root: str, s3_settings: Settings) -> None:
    data = random.Random(8).randbytes(100_000)
    url = s3_root + "ahead-streamed.bin"
    storage.put(url, data, settings=s3_settings)
    with AheadReader(url, len(data), settings=s3_settings, part=4096) as fh:
        _read_with_back_seeks(fh, data, 9)
        assert fh.fetched == len(data)  # each byte once, from one streamed request
        fh.seek(0)  # far back: a new request from there, and still right
        assert fh.read(10) == data[:10]
        assert fh.fetched == len(data) + 4096


_Pipe = tuple[io.FileIO, io.FileIO]


@pytest.fixture
def pipe() -> Iterator[_Pipe]:
    """An OS pipe: the child's stdin and the parent's end of it (raw bytes, as the object is sent)."""
    r, w = os.pipe()
    with io.FileIO(r, "rb") as recv, io.FileIO(w, "wb") as send:
        yield recv, send


def _read_with_back_seeks(fh: io.RawIOBase, data: bytes, seed: int) -> None:
    """Read ``fh`` through, seeking back up to two 4 KiB parts before each read, like rapidgzip."""
    pos, rnd = 0, random.Random(seed)
    while pos < len(data):
        for at, n in ((max(0, pos - rnd.randint(0, 8000)), 100), (pos, 3000)):
            fh.seek(at)
            got = fh.read(n)
            assert got
            assert got == data[at : at + len(got)]
        pos += len(got)


def test_pipe_reader_reports_a_short_last_part(pipe: _Pipe) -> None:
    """An object cut inside its last part (not at a part boundary) is an error, not an early end of file."""
    recv, send = pipe
    send.write(b"x" * 4096)
    send.write(b"y" * 1000)
    send.close()
    fh = PipeReader(recv, 10_000, part=4096, behind=gzip_stream._BEHIND)
    assert fh.read(6000) == b"x" * 4096
    assert fh.read(6000) == b"y" * 1000
    with pytest.raises(OSError, match="ends at byte 5096 of 10000"):
        fh.read(10)


def test_the_child_keeps_enough_parts_behind_for_parallel_decoding() -> None:
    def job(parallel: int, chunk: int) -> gzip_stream._Job:
        return gzip_stream._Job("x", 1 << 30, None, chunk, parallel, 8 * chunk)

    part = gzip_stream._PART
    assert gzip_stream._behind(job(1, part // 4)) == gzip_stream._BEHIND
    # rapidgzip's prefetch runs ahead by up to ``parallel`` chunks and reads back: keep twice that
    assert gzip_stream._behind(job(16, part // 4)) * part >= 2 * 16 * (part // 4)
    assert gzip_stream._behind(job(8, part)) * part >= 2 * 8 * part
