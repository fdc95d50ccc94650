"""Hand work from other threads to the server's event loop: one wake-up for everything queued meanwhile.

The store's commit thread settles the appends of every connection in one group commit; each
settled append must reach the event loop, whose ``call_soon_threadsafe`` takes a lock and
writes to the loop's self-pipe (a system call and a wake-up) per call. A :class:`LoopHandoff`
shared by all connections of a server queues the calls and wakes the loop once until it has
run them, so a commit answering sixteen connections costs one wake-up, not sixteen.

Example:
    >>> import asyncio
    >>> async def main() -> list[int]:
    ...     handoff, seen = LoopHandoff(asyncio.get_running_loop()), []
    ...     handoff.call(seen.append, 1)
    ...     handoff.call(seen.append, 2)
    ...     await asyncio.sleep(0)
    ...     return seen
    >>> asyncio.run(main())
    [1, 2]
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["LoopHandoff"]

log = logging.getLogger(__name__)


class LoopHandoff:
    """Runs ``fn(*args)`` on ``loop`` for calls from any thread, in call order, batched per loop wake-up."""

    __slots__ = ("_lock", "_loop", "_queue", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._queue: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._scheduled = False

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` for the loop; wakes it only when no wake-up is pending."""
        with self._lock:
            self._queue.append((fn, args))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._run)
        except RuntimeError:  # the loop is closed: nobody waits any more
            with self._lock:
                self._queue.clear()
                self._scheduled = False

    def _run(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
            self._scheduled = False
        for fn, args in batch:
            try:
                fn(*args)
            except Exception:  # one connection's failure must not drop the others' answers
                log.exception("stream server: a queued call on the event loop failed")
