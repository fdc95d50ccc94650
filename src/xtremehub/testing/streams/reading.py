"""Reading helpers of the stream suite: a fixed number of events, or one more that must not come."""

from __future__ import annotations

import time
import uuid

from xtremehub.streams import (
    EventRead,
    ReaderGroup,
)

__all__ = ["read_events", "read_events_or_none"]


def read_events(group: ReaderGroup, count: int, *, reader: str = "r", timeout: float = 20.0) -> list[EventRead]:
    """Read ``count`` events with one reader (fails the test if they do not come within ``timeout``)."""
    rd = group.create_reader(reader, sync_interval=0.05)
    out: list[EventRead] = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        event = rd.read_next(timeout=0.2)
        if event is not None:
            out.append(event)
    rd.reader_offline()
    assert len(out) == count, f"read {len(out)} of {count} events"
    return out


def read_events_or_none(group: ReaderGroup) -> EventRead | None:
    """One more event from a fresh reader after everything was read (None when there is none)."""
    reader = group.create_reader(f"extra-{uuid.uuid4().hex[:6]}", sync_interval=0.05)
    try:
        return reader.read_next(timeout=0.3)
    finally:
        reader.reader_offline()
