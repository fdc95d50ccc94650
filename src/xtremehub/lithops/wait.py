"""Lithops's ``wait``/``get_result`` functions and ``return_when`` constants.

Example:
    >>> from xtremehub import lithops
    >>> with lithops.FunctionExecutor(max_workers=1) as fexec:
    ...     futures = fexec.map(abs, [-1, -2])
    ...     done, not_done = lithops.wait(futures, return_when=lithops.ALL_COMPLETED)
    ...     lithops.get_result(futures)
    [1, 2]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xtremehub.compute.futures import ALL_COMPLETED, ALWAYS, ANY_COMPLETED, FuturesList, ResponseFuture

__all__ = ["ALL_COMPLETED", "ALWAYS", "ANY_COMPLETED", "THREADPOOL_SIZE", "WAIT_DUR_SEC", "get_result", "wait"]

#: Accepted for Lithops code; XtremeHub neither polls nor uses a thread pool to wait.
THREADPOOL_SIZE = 64
WAIT_DUR_SEC = 1


def _executor_of(fs: ResponseFuture | Sequence[ResponseFuture]) -> Any:
    executor = getattr(fs, "executor", None)
    if executor is None:
        from xtremehub.compute.executor import FunctionExecutor

        executor = FunctionExecutor()  # waiting needs no backend: futures settle on their own
    return executor


def wait(
    fs: ResponseFuture | Sequence[ResponseFuture],
    throw_except: bool = True,
    return_when: int = ALL_COMPLETED,
    download_results: bool = False,
    timeout: float | None = None,
    threadpool_size: int = THREADPOOL_SIZE,
    wait_dur_sec: float = WAIT_DUR_SEC,
    show_progressbar: bool | None = None,
) -> tuple[list[ResponseFuture], list[ResponseFuture]]:
    """Wait for futures of any executor; returns ``(done, not_done)``."""
    futures = [fs] if isinstance(fs, ResponseFuture) else list(fs)
    result: tuple[list[ResponseFuture], list[ResponseFuture]] = _executor_of(fs).wait(
        futures, throw_except, return_when, timeout=timeout, show_progressbar=show_progressbar
    )
    return result


def get_result(
    fs: ResponseFuture | Sequence[ResponseFuture],
    throw_except: bool = True,
    timeout: float | None = None,
    threadpool_size: int = THREADPOOL_SIZE,
    wait_dur_sec: float = WAIT_DUR_SEC,
    show_progressbar: bool | None = None,
) -> Any:
    """The results of futures of any executor."""
    if isinstance(fs, FuturesList | ResponseFuture):
        return _executor_of(fs).get_result(fs, throw_except, timeout, show_progressbar=show_progressbar)
    return _executor_of(fs).get_result(list(fs), throw_except, timeout, show_progressbar=show_progressbar)
