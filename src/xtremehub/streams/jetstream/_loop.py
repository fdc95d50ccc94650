"""One asyncio event loop in a daemon thread, behind synchronous calls (nats-py is asyncio-only).

Example:
    >>> import asyncio
    >>> loop = LoopThread("doc")
    >>> async def twice(x: int) -> int:
    ...     await asyncio.sleep(0)
    ...     return 2 * x
    >>> loop.run(twice(21))
    42
    >>> loop.stop()
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """An event loop running in its own daemon thread; ``run`` waits for a coroutine, ``submit`` does not."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"xhub-{name}", daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule ``coro`` on the loop; a concurrent future of its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and return its result (raising its exception)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("LoopThread.run called from its own loop: that would deadlock")
        return self.submit(coro).result(timeout)

    def stop(self) -> None:
        """Stop the loop and join the thread (pending tasks are cancelled)."""
        if not self._thread.is_alive():
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.submit(cancel_all()).result(5.0)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5.0)
            if not self._thread.is_alive():
                self.loop.close()
