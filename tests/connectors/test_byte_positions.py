"""The compiled byte finder against NumPy: same positions for every density, buffer type and edge."""

from __future__ import annotations

import numpy as np
import pytest

from xtremehub.connectors.codecs import byte_positions as bp


def test_the_compiled_scanner_is_built() -> None:
    assert bp.COMPILED, (
        "xtremehub.connectors.codecs._bytescan is not built (no C compiler at install): "
        "`make test` installs gcc; or apt-get install gcc, then pip install -e ."
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
