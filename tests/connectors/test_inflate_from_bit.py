"""Inflating from a checkpoint's bit offset: empty deflate blocks put in front of the compressed
bytes (``from_bit``) instead of shifting them, with every installed inflater and every shift."""

from __future__ import annotations

import gzip
import importlib.util
import io
import itertools
import random
import zlib
from collections.abc import Callable

import pytest

from xtremehub import storage
from xtremehub.connectors.codecs.gzip_index import Checkpoint, build_checkpoints, inflate_from
from xtremehub.connectors.codecs.inflate import PREFERRED, RawInflater, bit_prefix, from_bit, inflater
from xtremehub.connectors.codecs.source import RangeSource
from xtremehub.errors import CorruptData, TruncatedData

INFLATERS = [name for name, module in PREFERRED if importlib.util.find_spec(module.split(".")[0])]


def _fastq(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return b"".join(
        b"@r%d/%d\n%s\n+\n%s\n" % (seed, i, bytes(rng.choices(b"ACGT", k=150)), bytes(rng.choices(b"#-7<AFJ", k=150)))
        for i in range(n)
    )


def _at_bit(raw: bytes, shift: int, low: int) -> bytes:
    """``raw`` starting ``shift`` bits into its first byte, whose low bits are ``low`` (the end
    of whatever came before, as in a real stream)."""
    value = (int.from_bytes(raw, "little") << shift) | (low & ((1 << shift) - 1))
    return value.to_bytes(len(raw) + 1, "little")


def test_the_prefix_is_empty_blocks_ending_at_the_shift() -> None:
    for shift in range(8):
        head, low = bit_prefix(shift)
        assert low < (1 << shift) or low == 0
        # the prefix alone, closed by an empty final block, inflates to nothing
        final = (low | (0b011 << shift)).to_bytes(3, "little")  # BFINAL 1, BTYPE 01, end-of-block
        assert zlib.decompress(head + final, -15) == b""
    with pytest.raises(ValueError, match="shift"):
        bit_prefix(8)


@pytest.mark.parametrize("name", INFLATERS)
@pytest.mark.parametrize("shift", range(8))
def test_from_bit_inflates_exactly_with_the_window(name: str, shift: int) -> None:
    window = _fastq(200, 1)[-32768:]
    text = _fastq(3000, 2)
    comp = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=window)
    raw = comp.compress(text) + comp.flush()
    shifted = _at_bit(raw, shift, low=0xFF)
    cuts = [0, 0, 1, 5, 4096, 70_001, len(shifted)]  # an empty first chunk, a one-byte one, odd sizes
    chunks = [shifted[a:b] for a, b in itertools.pairwise(cuts)]
    prefix, stream = from_bit(iter(chunks), shift)
    dec = RawInflater(inflater(name), window)
    out = b"".join(o for chunk in stream for o in dec.feed(chunk))
    assert out == text
    assert dec.eof
    assert prefix == len(bit_prefix(shift)[0])


@pytest.mark.parametrize("name", INFLATERS)
def test_inflate_from_every_checkpoint_of_two_members(name: str) -> None:
    first, second = _fastq(4000, 3), _fastq(3000, 4)
    blob = gzip.compress(first, mtime=0) + gzip.compress(second, mtime=0)
    text = first + second
    url = "mem://inflate-from-bit/two.fq.gz"
    storage.put(url, blob)
    points = build_checkpoints(io.BytesIO(blob), url, spacing=64 * 1024).points[:-1]
    shifts = {p.bit_offset % 8 for p in points if p.window}
    assert len(shifts) >= 3, shifts  # several mid-byte checkpoints, so the prefixes are exercised
    lib = inflater(name)
    for point in points:
        src = RangeSource(url, len(blob), point.byte_offset, len(blob))
        got = b"".join(inflate_from(src, point, lib=lib))
        # the second member is found behind the first one's trailer, from wherever we started
        assert got == text[point.uncompressed :], (point.bit_offset, point.uncompressed)
    storage.delete(url)


def _from_mid_byte(member: bytes, url: str, name: str) -> tuple[Checkpoint, Callable[[bytes], bytes]]:
    """The first mid-byte checkpoint of ``member``'s index, and a function inflating a ``blob``
    (stored at ``url``) from it with the inflater ``name``."""
    points = build_checkpoints(io.BytesIO(member), url, spacing=64 * 1024).points
    point = next(p for p in points if p.window and p.bit_offset % 8)
    lib = inflater(name)

    def inflate(blob: bytes) -> bytes:
        storage.put(url, blob)
        return b"".join(inflate_from(RangeSource(url, len(blob), point.byte_offset, len(blob)), point, lib=lib))

    return point, inflate


@pytest.mark.parametrize("name", INFLATERS)
def test_bad_data_after_a_mid_byte_checkpoint_raises_typed_errors(name: str) -> None:
    member = gzip.compress(_fastq(6000, 5), mtime=0)
    url = "mem://inflate-from-bit/bad.fq.gz"
    point, inflate = _from_mid_byte(member, url, name)
    # a block of the reserved type 3 right at the checkpoint (a block boundary)
    bad = bytearray(member)
    for bit in (point.bit_offset + 1, point.bit_offset + 2):
        bad[bit // 8] |= 1 << (bit % 8)
    with pytest.raises(CorruptData, match="corrupt deflate data") as info:
        inflate(bytes(bad))
    assert url in str(info.value)
    assert point.byte_offset <= info.value.offset <= len(member)
    # cut inside the member
    with pytest.raises(TruncatedData, match="ends before its end-of-stream marker"):
        inflate(member[: len(member) - 5000])
    # garbage after the member: named at its trailer, found to the byte
    with pytest.raises(CorruptData, match="no gzip member follows") as info:
        inflate(member + b"not gzip at all")
    assert info.value.offset == len(member) - 8
    storage.delete(url)


@pytest.mark.parametrize("name", INFLATERS)
def test_the_end_of_the_object_after_a_mid_byte_checkpoint(name: str) -> None:
    """A trailer cut short is ``TruncatedData`` (it passed silently when the end was only known to
    the bit); zero padding after the last member is read as gzip reads it."""
    text = _fastq(6000, 6)
    member = gzip.compress(text, mtime=0)
    url = "mem://inflate-from-bit/end.fq.gz"
    point, inflate = _from_mid_byte(member, url, name)
    for cut in (1, 4, 7):
        with pytest.raises(TruncatedData, match="trailer") as info:
            inflate(member[:-cut])
        assert url in str(info.value)
    padded = member + bytes(1000)
    assert gzip.decompress(padded) == text
    assert inflate(padded) == text[point.uncompressed :]
    with pytest.raises(CorruptData, match="no gzip member follows"):
        inflate(member + bytes(1000) + b"x")
    storage.delete(url)


@pytest.mark.parametrize("name", INFLATERS)
def test_stored_blocks_after_a_mid_byte_checkpoint(name: str) -> None:
    """Stored (uncompressed) blocks start on a byte boundary counted from the stream's start: the
    prefix keeps that alignment, where shifting the bytes broke it ("invalid block")."""
    rng = random.Random(7)
    parts = [_fastq(300, 8), rng.randbytes(70_000), _fastq(300, 9), rng.randbytes(70_000), _fastq(300, 10)]
    text = b"".join(parts)
    member = gzip.compress(text, compresslevel=6, mtime=0)
    url = "mem://inflate-from-bit/stored.gz"
    storage.put(url, member)
    points = build_checkpoints(io.BytesIO(member), url, spacing=16 * 1024).points[:-1]
    mid = [p for p in points if p.window and p.bit_offset % 8]
    assert mid, "no mid-byte checkpoint to test"
    lib = inflater(name)
    for point in points:
        src = RangeSource(url, len(member), point.byte_offset, len(member))
        assert b"".join(inflate_from(src, point, lib=lib)) == text[point.uncompressed :], point.bit_offset
    storage.delete(url)
