"""Stream-level conformance suite: every way of running the stream store passes it unchanged.

Subclass :class:`StreamStoreTests` and provide a ``manager`` fixture: a fresh, empty
:class:`~xtremehub.streams.StreamManager` (embedded or connected to a server) whose
controller runs on the suite's ``clock`` fixture (a :class:`ManualClock`)::

    class TestEmbedded(StreamStoreTests):
        @pytest.fixture
        def manager(self, tmp_path, clock):
            with StreamManager.embedded(tmp_path / "data", maintenance_interval=3600, clock=clock) as m:
                yield m

The tests drive background duties (auto-scaling, retention, timeouts) by calling
``manager.controller.run_maintenance()`` themselves and move time with ``clock.advance``,
so they depend neither on the maintenance timer nor on how fast the machine is.

The suite is composed of one part per concern (each a class in its own module):
:mod:`~xtremehub.testing.streams.lifecycle`, :mod:`~xtremehub.testing.streams.events`,
:mod:`~xtremehub.testing.streams.exactly_once`, :mod:`~xtremehub.testing.streams.transactions`,
:mod:`~xtremehub.testing.streams.readergroups`, :mod:`~xtremehub.testing.streams.retention`,
:mod:`~xtremehub.testing.streams.bytestreams`; the failure-injecting store wrappers are in
:mod:`~xtremehub.testing.streams.faults`.
"""

from __future__ import annotations

from xtremehub.testing.streams.base import StreamSuiteBase
from xtremehub.testing.streams.bytestreams import ByteStreamTests
from xtremehub.testing.streams.clock import ManualClock
from xtremehub.testing.streams.events import EventTests
from xtremehub.testing.streams.exactly_once import ExactlyOnceTests
from xtremehub.testing.streams.faults import FlakyAcks, HeldAcks
from xtremehub.testing.streams.lifecycle import LifecycleTests
from xtremehub.testing.streams.readergroups import ReaderGroupTests
from xtremehub.testing.streams.reading import read_events, read_events_or_none
from xtremehub.testing.streams.retention import RetentionTests
from xtremehub.testing.streams.transactions import TransactionTests

__all__ = [
    "FlakyAcks",
    "HeldAcks",
    "ManualClock",
    "StreamStoreTests",
    "StreamSuiteBase",
    "read_events",
    "read_events_or_none",
]


class StreamStoreTests(
    LifecycleTests,
    EventTests,
    ExactlyOnceTests,
    TransactionTests,
    ReaderGroupTests,
    RetentionTests,
    ByteStreamTests,
):
    """Pravega semantics through :class:`~xtremehub.streams.StreamManager`: every part of the suite."""
