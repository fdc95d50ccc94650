"""A small in-memory segment store for the protocol-level server tests (framing, dispatch, shutdown).

The conformance suites run against the real segment store; this one lets protocol tests run
without the disk and lets tests make the store misbehave on purpose.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

from xtremehub.errors import (
    ConditionalCheckFailed,
    EventNumberGap,
    SegmentNotFound,
    SegmentSealed,
    SegmentTruncated,
)
from xtremehub.streams.segmentstore.contract import (
    AppendResult,
    ReadResult,
    SegmentInfo,
    SegmentStoreContract,
    StoreStats,
)


class DictSegmentStore(SegmentStoreContract):
    """Segments as bytearrays in a dict; appends resolve at once; reads wait on a condition."""

    def __init__(self) -> None:
        self.data: dict[str, bytearray] = {}
        self.sealed: set[str] = set()
        self.writers: dict[tuple[str, str], int] = {}
        self.cond = threading.Condition()
        self.closed = False

    def _get(self, name: str) -> bytearray:
        if name not in self.data:
            raise SegmentNotFound(f"segment {name!r}")
        return self.data[name]

    def create_segment(self, name: str) -> bool:
        with self.cond:
            if name in self.data:
                return False
            self.data[name] = bytearray()
            return True

    def append(self, segment, data, *, writer_id=None, event_number=None, expected_offset=None, timeout=None):  # type: ignore[no-untyped-def]
        with self.cond:
            buf = self._get(segment)
            if segment in self.sealed:
                raise SegmentSealed(f"segment {segment!r} is sealed")
            if writer_id is not None and event_number is not None:
                last = self.writers.get((segment, writer_id))
                if last is not None and event_number <= last:
                    return AppendResult(segment, len(buf), len(data), duplicate=True)
                self.writers[(segment, writer_id)] = event_number
            if expected_offset is not None and expected_offset != len(buf):
                raise ConditionalCheckFailed(f"{segment}: expected {expected_offset}, at {len(buf)}")
            offset = len(buf)
            buf += data
            self.cond.notify_all()
            return AppendResult(segment, offset, len(data))

    def append_async(  # type: ignore[no-untyped-def]
        self,
        segment,
        data,
        *,
        writer_id=None,
        event_number=None,
        expected_offset=None,
        timeout=None,
        previous_event_number=None,
    ):
        future: Future[AppendResult] = Future()
        try:
            if previous_event_number is not None:
                last = self.writers.get((segment, writer_id))
                if last is None or last < previous_event_number:  # (then it is no duplicate either)
                    raise EventNumberGap(f"{segment}: event {event_number} after {previous_event_number}, last {last}")
            future.set_result(
                self.append(
                    segment, data, writer_id=writer_id, event_number=event_number, expected_offset=expected_offset
                )
            )
        except Exception as exc:
            future.set_exception(exc)
        return future

    def read(self, segment: str, offset: int, max_length: int, *, wait: float = 0.0) -> ReadResult:
        with self.cond:
            buf = self._get(segment)
            if offset < 0:
                raise SegmentTruncated(f"{segment}: offset {offset}")
            if offset >= len(buf) and wait > 0 and segment not in self.sealed:
                self.cond.wait_for(lambda: len(self.data.get(segment, b"")) > offset, timeout=wait)
            chunk = bytes(buf[offset : offset + max_length])
            end = segment in self.sealed and offset + len(chunk) >= len(buf)
            return ReadResult(segment, offset, chunk, end)

    def info(self, segment: str) -> SegmentInfo:
        with self.cond:
            return SegmentInfo(segment, 0, len(self._get(segment)), segment in self.sealed)

    def writer_event_number(self, segment: str, writer_id: str) -> int | None:
        return self.writers.get((segment, writer_id))

    def seal(self, segment: str) -> int:
        with self.cond:
            self.sealed.add(segment)
            self.cond.notify_all()
            return len(self._get(segment))

    def merge(self, target: str, source: str) -> int:
        with self.cond:
            offset = len(self._get(target))
            self._get(target).extend(self.data.pop(source))
            return offset

    def truncate(self, segment: str, offset: int) -> None:
        self._get(segment)

    def delete(self, segment: str) -> None:
        with self.cond:
            self._get(segment)
            del self.data[segment]

    def list_segments(self, prefix: str = "") -> list[str]:
        return sorted(n for n in self.data if n.startswith(prefix))

    def stats(self) -> StoreStats:
        return StoreStats(0, 0, 0, 0, lts_available=True, throttled=False)

    def close(self) -> None:
        self.closed = True
