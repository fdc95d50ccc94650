from typing import Any

import numpy as np

def scan(
    data: bytes | bytearray | memoryview | np.ndarray[Any, Any], byte: int, out: np.ndarray[Any, Any], start: int, /
) -> tuple[int, int]: ...
