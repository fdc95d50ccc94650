"""Scopes and streams: create, list, describe, delete; bad names and sizes."""

from __future__ import annotations

import pytest

from xtremehub.errors import (
    EventTooLarge,
    InvalidStreamArgument,
    ReaderGroupNotFound,
    ScopeNotFound,
    StreamNotFound,
)
from xtremehub.streams import (
    MAX_EVENT_SIZE,
    ScalingPolicy,
    StreamManager,
)
from xtremehub.testing.streams.base import StreamSuiteBase, names
from xtremehub.testing.streams.reading import read_events

__all__ = ["LifecycleTests"]


class LifecycleTests(StreamSuiteBase):
    """Scopes and streams: create, list, describe, delete; bad names and sizes."""

    def test_scope_and_stream_lifecycle(self, manager: StreamManager) -> None:
        scope, stream = names()
        assert manager.create_scope(scope) is True
        assert manager.create_scope(scope) is False
        assert scope in manager.list_scopes()
        assert manager.create_stream(scope, stream, scaling_policy=ScalingPolicy.fixed(3)) is True
        assert manager.create_stream(scope, stream) is False
        assert manager.list_streams(scope) == [stream]
        info = manager.get_stream(scope, stream)
        assert len(info.active_segments) == 3
        assert info.active_segments[0].key_low == 0.0
        assert info.active_segments[-1].key_high == 1.0
        with pytest.raises(InvalidStreamArgument):
            manager.delete_scope(scope)
        manager.delete_stream(scope, stream)
        assert manager.list_streams(scope) == []
        assert manager.delete_scope(scope) is True

    def test_unknown_scope_stream_group_and_bad_names(self, manager: StreamManager) -> None:
        scope, stream = names()
        with pytest.raises(ScopeNotFound):
            manager.create_stream(scope, stream)
        manager.create_scope(scope)
        with pytest.raises(StreamNotFound):
            manager.create_writer(scope, "missing")
        with pytest.raises(StreamNotFound):
            manager.create_reader_group("g", scope, ["missing"])
        with pytest.raises(ReaderGroupNotFound):
            manager.get_reader_group("nogroup", scope)
        with pytest.raises(InvalidStreamArgument, match="stream name"):
            manager.create_stream(scope, "a/b")
        with pytest.raises(InvalidStreamArgument, match="min_segments"):
            ScalingPolicy.fixed(0)

    def test_oversize_event_is_refused(self, manager: StreamManager) -> None:
        scope, stream = self._stream(manager)
        writer = manager.create_writer(scope, stream)
        with pytest.raises(EventTooLarge, match="8388609 bytes"):
            writer.write_event(b"x" * (MAX_EVENT_SIZE + 1))
        writer.write_event(b"y" * MAX_EVENT_SIZE)
        writer.close()
        group = manager.create_reader_group("g", scope, [stream])
        (event,) = read_events(group, 1)
        assert len(event.data) == MAX_EVENT_SIZE
