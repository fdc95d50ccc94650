"""Task functions for the ``xtremehub.multiprocessing`` tests, importable on any backend's workers.

They only use their arguments, files and shared-state proxies: nothing relies on
state inherited through ``fork``, so the same tests run on spawn-based and
distributed backends.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from xtremehub.multiprocessing import Process

__all__ = [
    "FileWritingProcess",
    "add",
    "cube",
    "exit_with",
    "fail_on",
    "fill_slot",
    "increment",
    "initialized_value",
    "put_later",
    "put_square",
    "record_init",
    "report_identity",
    "sleep_and_return",
]

_state: dict[str, Any] = {}  # set by record_init in each worker process


def cube(x: int) -> int:
    return x * x * x


def add(a: int, b: int, c: int = 0) -> int:
    return a + b + c


def sleep_and_return(value: Any, seconds: float) -> Any:
    time.sleep(seconds)
    return value


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


def record_init(directory: str, value: str) -> None:
    """A pool initializer: remember ``value`` and leave one file per run in ``directory``."""
    _state["value"] = value
    Path(directory, f"init-{os.getpid()}-{time.monotonic_ns()}").touch()


def initialized_value(_: Any) -> tuple[int, Any]:
    """The worker's pid and what the initializer stored there (None if it did not run)."""
    return os.getpid(), _state.get("value")


def exit_with(code: Any) -> None:
    sys.exit(code)


def put_square(queue: Any, x: int) -> None:
    queue.put(x * x)


def increment(counter: Any, times: int) -> None:
    for _ in range(times):
        with counter.get_lock():
            counter.value += 1


def fill_slot(array: Any, index: int) -> None:
    array[index] = index * 10


class FileWritingProcess(Process):
    """A ``Process`` subclass overriding ``run``, as standard-library code often does."""

    def __init__(self, path: str, text: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path, self.text = path, text

    def run(self) -> None:
        Path(self.path).write_text(self.text)


def report_identity(queue: Any) -> None:
    """Put what ``current_process()`` says here: the ``Process``'s name, and whether it is daemonic."""
    from multiprocessing import current_process

    me = current_process()
    queue.put((me.name, me.daemon))


def put_later(queue: Any, value: Any, delay: float) -> None:
    """Return at once; a non-daemonic thread puts ``value`` after ``delay`` seconds."""

    def late() -> None:
        time.sleep(delay)
        queue.put(value)

    threading.Thread(target=late).start()
