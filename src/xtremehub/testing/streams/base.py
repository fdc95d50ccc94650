"""What every part of the stream conformance suite shares: the fixtures to override and stream helpers."""

from __future__ import annotations

import uuid
from collections import defaultdict

import pytest

from xtremehub.streams import (
    EventRead,
    ScalingPolicy,
    StreamManager,
)
from xtremehub.testing.streams.clock import ManualClock

__all__ = ["StreamSuiteBase", "names"]


def names() -> tuple[str, str]:
    """A fresh (scope, stream) pair of names, unique per call."""
    return f"sc{uuid.uuid4().hex[:8]}", f"st{uuid.uuid4().hex[:8]}"


class StreamSuiteBase:
    """Fixtures and helpers every part of the stream suite shares."""

    @pytest.fixture
    def clock(self) -> ManualClock:
        """The time of the controller under test: the ``manager`` fixture must build it on this clock."""
        return ManualClock()

    @pytest.fixture
    def manager(self, clock: ManualClock) -> StreamManager:
        raise NotImplementedError("subclasses provide a fresh StreamManager whose controller runs on `clock`")

    def _stream(self, manager: StreamManager, policy: ScalingPolicy | None = None, **kw: object) -> tuple[str, str]:
        scope, stream = names()
        manager.create_scope(scope)
        manager.create_stream(scope, stream, scaling_policy=policy, **kw)  # type: ignore[arg-type]
        return scope, stream

    @staticmethod
    def _assert_per_key_order(events: list[EventRead], writers: int, per_writer: int) -> None:
        payloads = [e.data.decode() for e in events]
        assert len(set(payloads)) == len(payloads) == writers * per_writer, "lost or duplicated events"
        last: dict[tuple[str | None, int], int] = defaultdict(lambda: -1)
        for event in events:
            w, i = map(int, event.data.decode().split(":"))
            assert i > last[(event.routing_key, w)], f"event {w}:{i} of {event.routing_key} out of order"
            last[(event.routing_key, w)] = i
