"""Admission of appends to a segment store's backlog budget (back pressure while LTS lags).

Bytes not yet in LTS (``state.untiered``) plus bytes admitted but not yet committed may not
exceed ``config.backlog_budget`` (memory plus disk budget): an append waits for room and
raises :class:`~xtremehub.errors.BackPressure` after its timeout. The accounting has its own
lock, so admission never waits behind a group commit.
"""

from __future__ import annotations

import threading
import time

from xtremehub.errors import BackPressure
from xtremehub.streams.segmentstore.core import StoreCore

__all__ = ["Admission"]


class Admission:
    """The backlog budget of one store."""

    def __init__(self, core: StoreCore) -> None:
        self._core = core
        self._budget = threading.Condition(threading.Lock())
        self._reserved = 0  # bytes admitted but not yet committed
        self._throttled = 0  # appends waiting for budget now

    @property
    def throttled(self) -> bool:
        """True while an append waits for budget."""
        return self._throttled > 0

    def admit(self, segment: str, size: int, timeout: float | None) -> None:
        """Reserve ``size`` bytes of the backlog budget, waiting while it is exhausted."""
        core, config = self._core, self._core.config
        budget = config.backlog_budget
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._budget:
            core.check_open()
            while core.state.untiered + self._reserved + size > budget and core.state.untiered + self._reserved > 0:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise BackPressure(
                        f"segment {segment!r}: {core.state.untiered + self._reserved} bytes wait for LTS "
                        f"(budget {budget} = memory {config.memory_budget} + disk {config.disk_budget}); "
                        f"nothing was written, retry later"
                    )
                self._throttled += 1
                try:
                    self._budget.wait(0.5 if remaining is None else min(remaining, 0.5))
                finally:
                    self._throttled -= 1
                core.check_open()
            self._reserved += size

    def release(self, size: int) -> None:
        """``size`` admitted bytes were committed (or refused): give their reservation back."""
        with self._budget:
            self._reserved -= size
            self._budget.notify_all()

    def notify(self) -> None:
        """Wake throttled appends to look again (the backlog shrank, or the store closed or failed)."""
        with self._budget:
            self._budget.notify_all()
