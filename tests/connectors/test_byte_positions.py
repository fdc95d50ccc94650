"""The compiled byte finder against NumPy: same positions for every density, buffer type and edge."""

from __future__ import annotations

import numpy as np
import pytest

from xtremehub.connectors.codecs import byte_positions as bp


def test_the_compiled_scanner_is_built() -> None:
    assert bp.COMPILED, (
        "xtremehub.connectors.codecs._bytescan is not built (no C compiler at install): "
        "`make test` installs gcc; it also needs Python's headers (Debian: python3-dev), then pip install -e ."
    )


@pytest.mark.parametrize("density", [0.0, 0.001, 0.012, 0.2, 0.9, 1.0])
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 31, 33, 1000, 100_003])
def test_same_positions_as_numpy(density: float, size: int) -> None:
    rng = np.random.default_rng(size)
    text = rng.integers(32, 127, size, dtype=np.uint8)
    text[rng.random(size) < density] = 10
    data = text.tobytes()
    got = bp.byte_positions(data, 10)
    assert got.dtype == np.intp
    assert got.tolist() == np.flatnonzero(text == 10).tolist() == bp.numpy_byte_positions(data, 10).tolist()


@pytest.mark.parametrize("byte", [0, 10, 255])
def test_any_byte_in_any_buffer_from_an_offset(byte: int) -> None:
    data = bytearray(b"x" * 40)
    data[3] = data[16] = data[39] = byte
    view = memoryview(bytes(data))[2:]  # a view that does not start at its buffer's start
    assert bp.byte_positions(view, byte).tolist() == [1, 14, 37]
    assert bp.byte_positions(data, byte).tolist() == [3, 16, 39]


def test_bytes_of_any_shape_are_counted_as_bytes() -> None:
    grid = np.full((100, 40), 10, dtype=np.uint8)
    assert bp.byte_positions(grid, 10).tolist() == list(range(4000))
    words = np.zeros(5, dtype=np.uint64)
    words[2] = 0x0A00
    assert bp.byte_positions(words, 10).tolist() == bp.numpy_byte_positions(words, 10).tolist() == [17]
    assert bp.byte_positions(memoryview(grid.tobytes()).cast("Q"), 10).tolist() == list(range(4000))
    for bad in (-1, 256):
        for find in (bp.byte_positions, bp.numpy_byte_positions):
            with pytest.raises(ValueError, match="0-255"):
                find(b"abc", bad)
    with pytest.raises(ValueError, match="contiguous"):
        bp.byte_positions(grid[:, ::2], 10)


def test_few_hits_keep_no_spare_room_and_dense_ones_are_all_found() -> None:
    sparse = bp.byte_positions(b"x" * 1_000_000 + b"\n", 10)
    assert sparse.tolist() == [1_000_000]
    assert sparse.base is None or sparse.base.nbytes < 1_000  # not a view of a 250 KB buffer
    dense = bytes(np.tile(np.frombuffer(b"ab\n", dtype=np.uint8), 100_000))  # one hit per 3 bytes
    assert bp.byte_positions(dense, 10).tolist() == list(range(2, 300_000, 3))


def test_the_compiled_call_rejects_bad_arguments() -> None:
    from xtremehub.connectors.codecs._bytescan import scan

    out = np.empty(4, dtype=np.intp)
    with pytest.raises(ValueError, match="byte must be"):
        scan(b"abc", 256, out, 0)
    with pytest.raises(ValueError, match="byte must be"):
        scan(b"abc", 10, out, 4)
    with pytest.raises(ValueError, match="Py_ssize_t"):
        scan(b"abc", 10, np.empty(4, dtype=np.int32), 0)
    with pytest.raises(TypeError):
        scan(b"abc", 10, b"read-only", 0)
    assert scan(b"\n\n\n\n\n\n", 10, out, 0) == (4, 4)  # full: resume from offset 4
    assert out.tolist() == [0, 1, 2, 3]
