"""Progress bars for jobs: shown only on a TTY and only once a job has run for a second."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

__all__ = ["progress_bar", "wants_progress"]


def wants_progress(setting: bool | None) -> bool:
    """``True``/``False`` force it; ``None`` means "only when stderr is a terminal"."""
    if setting is not None:
        return setting
    return sys.stderr.isatty()


def progress_bar(total: int, desc: str, *, enabled: bool, unit: str = "call", **kwargs: Any) -> tqdm[Any]:
    """A tqdm bar that stays invisible for the first second (``delay``), or a disabled one."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, delay=1.0, leave=False, **kwargs)
