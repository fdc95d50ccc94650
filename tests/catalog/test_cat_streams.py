"""Streams registered from Python with the facts of their history: a version per stream cut."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from xtremehub.catalog import SearchQuery
from xtremehub.catalog.store import SqlCatalog
from xtremehub.catalog.streams import StreamStore
from xtremehub.config import CatalogSettings, Settings
from xtremehub.errors import DataDirLocked, HistoryNotTiered, InvalidMetadata, StreamNotFound, UnsupportedURL
from xtremehub.streams import StreamManager

URL = "xhub-stream://lab/sensors"


def test_register_a_stream_with_its_facts_and_a_version_per_cut(
    fresh_catalog: SqlCatalog, tmp_path: Path, sensor_events: Any
) -> None:
    sensor_events(tmp_path / "streams", 40)  # the catalog's home is tmp_path: <home>/streams by default
    ds = fresh_catalog.register(URL, actor="alice", tags=["iot"])  # kind: a stream URL is a stream
    assert (ds.kind, ds.format, ds.title, ds.latest_version) == ("stream", "stream", "lab/sensors", 1)
    facts = ds.facts
    assert (facts["scope"], facts["stream"], facts["events"], facts["segments"]) == ("lab", "sensors", 40, 1)
    assert facts["bytes"] > 40 * len("reading-00000")
    assert facts["average_bytes_per_second"] > 0
    assert facts["average_events_per_second"] > 0
    assert facts["sealed"] is False
    assert facts["time_range"][0] <= facts["time_range"][1]
    assert fresh_catalog.register(URL, actor="alice").latest_version == 1  # the same cut: unchanged

    sensor_events(tmp_path / "streams", 25, start=40)
    newer = fresh_catalog.register(URL, actor="alice")
    assert (newer.id, newer.latest_version, newer.facts["events"]) == (ds.id, 2, 65)
    cuts = [json.loads(v.source_version)["positions"] for v in fresh_catalog.versions(ds.id)]
    assert [sum(c.values()) for c in cuts] == [facts["bytes"], newer.facts["bytes"]]
    assert fresh_catalog.search(SearchQuery(text="sensors", filters={"kind": ("stream",)})).total == 1


def test_missing_or_malformed_streams_are_typed_errors(
    fresh_catalog: SqlCatalog, tmp_path: Path, sensor_events: Any
) -> None:
    with pytest.raises(StreamNotFound, match="no stream store at"):
        fresh_catalog.register(URL, actor="alice")
    assert not (tmp_path / "streams").exists()  # looking did not create an empty store
    sensor_events(tmp_path / "streams", 3)
    for url in ("xhub-stream://lab/absent", "xhub-stream://nolab/sensors"):
        with pytest.raises(StreamNotFound, match=url):
            fresh_catalog.register(url, actor="alice")
    with pytest.raises(UnsupportedURL, match="xhub-stream://<scope>/<stream>"):
        fresh_catalog.register("xhub-stream://lab", actor="alice")
    with pytest.raises(InvalidMetadata, match="is a stream, not a prefix"):
        fresh_catalog.register(URL, actor="alice", kind="prefix")
    assert fresh_catalog.search(SearchQuery()).total == 0


def test_a_given_manager_and_bytes_not_yet_in_lts(tmp_path: Path, sensor_events: Any) -> None:
    settings = Settings(home=tmp_path)
    with StreamManager.embedded(tmp_path / "held", lts_flush_delay=3600) as manager:  # nothing reaches LTS
        sensor_events(manager, 5)
        with pytest.raises(HistoryNotTiered, match="not all in LTS yet"):
            StreamStore(settings, manager=manager, wait=0.2).extract(URL)
    with StreamManager.embedded(tmp_path / "held", lts_flush_delay=0.0, tiering_interval=0.05) as manager:
        found = StreamStore(settings, manager=lambda: manager).extract(URL)  # a factory, as a web server gives
        held = Settings(home=tmp_path, catalog=CatalogSettings(streams=str(tmp_path / "held")))
        with pytest.raises(DataDirLocked, match=r"point \[catalog\] streams at the stream server"):
            StreamStore(held).extract(URL)  # the configured store is open here: not opened twice
    assert (found.format, found.facts["events"]) == ("stream", 5)
