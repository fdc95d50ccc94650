"""A writer that gave up on an event refused for back pressure goes on writing once the pressure ends.

The real segment store behind a real server, with small budgets and its LTS made unreachable:
appends are refused for back pressure, the writer retries until its ``retry_timeout`` and then
gives up (the application gets ``BackPressure``). Once LTS is back, the same writer's later
events must be stored: the event given up is never re-sent, so nothing may wait for it.
Every acknowledged event is stored once, in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from xtremehub.errors import BackPressure
from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.streams.client._framing import EventDecoder
from xtremehub.streams.client.writer import EventPointer, EventStreamWriter, WriterConfig
from xtremehub.streams.server import ServerConfig, StreamServer, serve_background

EVENT = 1000
BUDGET = 4 * EVENT


@pytest.fixture
def pressed(tmp_path: Path) -> Iterator[tuple[StreamManager, StreamServer, Path]]:
    lts = tmp_path / "lts"
    embedded = StreamManager.embedded(
        tmp_path / "data",
        str(lts),
        maintenance_interval=3600,
        memory_budget=BUDGET // 2,
        disk_budget=BUDGET // 2,
        backpressure_timeout=0.05,
        tiering_interval=0.05,
        lts_flush_delay=0.0,
        lts_retry_initial=0.05,
        lts_retry_max=0.1,
    )
    embedded.create_scope("lab")
    embedded.create_stream("lab", "s", scaling_policy=ScalingPolicy.fixed(1))
    try:
        with serve_background(embedded.store, embedded.controller, ServerConfig(shutdown_grace=5.0)) as server:
            yield embedded, server, lts
    finally:
        embedded.close()


def _lts_down(lts: Path) -> None:
    """LTS unreachable: its directory is moved away and a file takes its place (every upload fails)."""
    lts.mkdir(exist_ok=True)
    lts.rename(lts.with_name("lts.away"))
    lts.write_bytes(b"not a directory")


def _lts_up(embedded: StreamManager, lts: Path) -> None:
    lts.unlink()
    lts.with_name("lts.away").rename(lts)
    deadline = time.monotonic() + 30
    while embedded.store.stats().untiered_bytes:
        assert time.monotonic() < deadline, "the backlog did not reach LTS"
        time.sleep(0.02)


def _stored(embedded: StreamManager) -> list[bytes]:
    (segment,) = embedded.get_stream("lab", "s").active_segments
    decoder = EventDecoder(segment.name, 0)
    offset = 0
    while data := embedded.store.read(segment.name, offset, 1 << 20).data:  # one tier per read
        decoder.feed(data)
        offset += len(data)
    events = []
    while (event := decoder.next_event()) is not None:
        events.append(event[3])
    return events


def _event(i: int) -> bytes:
    return b"%06d" % i + b"." * (EVENT - 6)


@pytest.mark.parametrize("in_flight", [0, 16])
def test_a_writer_goes_on_after_giving_up_an_event(
    pressed: tuple[StreamManager, StreamServer, Path], in_flight: int, caplog: pytest.LogCaptureFixture
) -> None:
    embedded, server, lts = pressed
    manager = StreamManager(server.url)
    try:
        config = WriterConfig(max_in_flight=in_flight, retry_timeout=0.3)
        writer = EventStreamWriter(manager.controller, manager.store, "lab", "s", config=config)
        _lts_down(lts)
        acknowledged: list[bytes] = []
        given_up = 0
        futures: list[tuple[bytes, Future[EventPointer]]] = []
        for i in range(12):  # past the budget: the later ones are refused for back pressure
            try:
                futures.append((_event(i), writer.write_event(_event(i), routing_key="k")))
            except BackPressure:
                given_up += 1
        with pytest.raises(BackPressure) if in_flight else _nothing():
            writer.flush()
        for data, future in futures:
            if isinstance(future.exception(timeout=30), BackPressure):
                given_up += 1
            else:
                acknowledged.append(data)
        assert given_up, "the budget never pressed: the test proves nothing"

        _lts_up(embedded, lts)
        later = [_event(100 + i) for i in range(5)]
        with caplog.at_level(logging.INFO, logger="xtremehub.streams.client.writer"):
            for data in later:
                writer.write_event(data, routing_key="k")
            writer.flush()  # raised BackPressure for good before the fix: the writer stayed blocked
            writer.close()
        # a re-send after plain back pressure is legitimate (5 KB against a 4 KB budget can press
        # again under load); one after a gap means a batch named a given-up event as its previous
        gaps = [r.getMessage() for r in caplog.records if "re-sending" in r.getMessage() and "Gap" in r.getMessage()]
        assert not gaps, f"the next batch named an event given up as its previous one: {gaps}"
        assert _stored(embedded) == acknowledged + later, "an acknowledged event was lost, doubled or reordered"
    finally:
        manager.close()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
