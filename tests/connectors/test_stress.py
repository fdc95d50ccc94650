"""Generated stress files (slow marker): hundreds of MB, '@'-leading qualities, mixed lengths, many members."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import numpy as np
import pytest

from xtremehub import FunctionExecutor
from xtremehub.connectors import CloudObject, Format, Index, known_formats, register_format
from xtremehub.connectors.genomics import FASTQGZip, partition_reads_batches
from xtremehub.errors import ConfigError

pytestmark = pytest.mark.slow


def _records(rng: np.random.Generator, first: int, n: int) -> bytes:
    lengths = rng.integers(1, 300, n)
    ends = np.cumsum(lengths)
    seqs = rng.choice(np.frombuffer(b"ACGTN", np.uint8), int(ends[-1])).tobytes()
    quals = rng.choice(np.frombuffer(b"@@@ABCDEFGHIJ+#", np.uint8), int(ends[-1])).tobytes()  # '@'/'+' often lead
    out = []
    start = 0
    for i, end in enumerate(ends.tolist()):
        out.append(b"@r%d\n%s\n+\n%s\n" % (first + i, seqs[start:end], quals[start:end]))
        start = end
    return b"".join(out)


def _gzip_member(data: bytes) -> bytes:
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    return comp.compress(data) + comp.flush()


def test_many_member_fastq_stress(tmp_path: Path) -> None:
    rng = np.random.default_rng(2026)
    path = tmp_path / "stress.fastq.gz"
    digest, reads, size = hashlib.md5(), 0, 0
    with path.open("wb") as fh:
        while size < 200 * 1024 * 1024:
            text = _records(rng, reads, 20_000)
            reads += 20_000
            size += len(text)
            digest.update(text)
            # members cut at arbitrary byte positions, not at record boundaries
            cuts = sorted(rng.integers(1, len(text), 5).tolist())
            for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True):
                fh.write(_gzip_member(text[a:b]))
    with FunctionExecutor(workers=2) as fexec:
        co = CloudObject.from_path(FASTQGZip, str(path)).preprocess(fexec)
        assert co["num_reads"] == reads
        assert co["uncompressed_size"] == size
        slices = co.partition(partition_reads_batches, num_batches=32)
        hashes = fexec.get_result(fexec.map(_slice_md5, slices))
    assert sum(h[1] for h in hashes) == reads
    assert _concat_md5(slices) == digest.hexdigest()


def _slice_md5(data_slice: object) -> tuple[str, int]:
    h = hashlib.md5()
    n = 0
    for chunk in data_slice.iter_chunks():  # type: ignore[attr-defined]
        h.update(chunk)
        n += chunk.count(b"\n") // 4
    return h.hexdigest(), n


def _concat_md5(slices: list) -> str:  # type: ignore[type-arg]
    h = hashlib.md5()
    for s in slices:
        for chunk in s.iter_chunks():
            h.update(chunk)
    return h.hexdigest()


class _LineCount(Format):
    """A third-party format: registered at run time, no package edits."""

    name = "linecount-test"

    def build_index(self, co, executor):  # type: ignore[no-untyped-def]
        from xtremehub import storage

        return Index(self.name, 1, {}, {"lines": storage.get(co.url).count(b"\n")})


def test_third_party_format_registration(tmp_path: Path) -> None:
    register_format("linecount-test", _LineCount)
    assert "linecount-test" in known_formats()
    with pytest.raises(ConfigError, match="already registered"):
        register_format("linecount-test", _LineCount)
    (tmp_path / "f.txt").write_text("a\nb\nc\n")
    co = CloudObject.from_path("linecount-test", str(tmp_path / "f.txt")).preprocess()
    assert co["lines"] == 3
