"""A clock the tests move by hand, for the controller's leases, timeouts, retention and scaling.

Pass it to the controller (``StreamManager.embedded(path, clock=clock)`` or
``Controller(store, db, clock=clock)``); a test then advances time instead of sleeping past
a deadline, and the controller sees exactly the time the test says.

Example:
    >>> clock = ManualClock(start=100.0)
    >>> clock()
    100.0
    >>> clock.advance(2.5)
    102.5
    >>> clock()
    102.5
"""

from __future__ import annotations

import threading

__all__ = ["ManualClock"]


class ManualClock:
    """Seconds that move only when :meth:`advance` is called (thread-safe)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (not backwards); returns the new time."""
        if seconds < 0:
            raise ValueError(f"a clock does not go back ({seconds} s)")
        with self._lock:
            self._now += seconds
            return self._now
