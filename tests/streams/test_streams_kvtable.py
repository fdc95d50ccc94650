"""Key-value tables on streams: versions, conditional updates, iteration, many clients, restarts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from xtremehub.errors import ConditionalCheckFailed, InvalidStreamArgument
from xtremehub.streams import StreamManager
from xtremehub.streams.kvtable import ABSENT, KeyValueTable
from xtremehub.streams.server import serve_background


@pytest.fixture(params=["embedded", "server"])
def managers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[StreamManager, StreamManager]]:
    """Two clients of one store: in one process, or two connections to a stream server."""
    with StreamManager.embedded(tmp_path / "streams") as embedded:
        if request.param == "embedded":
            yield embedded, embedded
            return
        with (
            serve_background(embedded.store, embedded.controller) as server,
            StreamManager(server.url) as a,
            StreamManager(server.url) as b,
        ):
            yield a, b


def test_put_get_remove_versions_and_iteration(managers: tuple[StreamManager, StreamManager]) -> None:
    a, _ = managers
    table = KeyValueTable(a, "lab", "t", partitions=3)
    versions = {f"k{i:02d}": table.put(f"k{i:02d}", b"v%d" % i) for i in range(20)}
    assert table.keys() == sorted(versions)
    assert len(table) == 20
    entry = table.get("k07")
    assert entry is not None
    assert (entry.value, entry.version) == (b"v7", versions["k07"])
    newer = table.put("k07", b"seven", version=versions["k07"])
    assert newer > versions["k07"]
    with pytest.raises(ConditionalCheckFailed, match="'k07' is at"):
        table.put("k07", b"stale", version=versions["k07"])
    with pytest.raises(ConditionalCheckFailed, match="exists"):
        table.put_if_absent("k07", b"again")
    table.remove("k07", version=newer)
    assert table.get("k07") is None
    assert "k07" not in table
    assert table.put("k07", b"back", version=ABSENT) > newer
    with pytest.raises(ConditionalCheckFailed, match="is absent"):
        table.remove("nope", version=newer)
    table.remove("nope")  # unconditional removal of a missing key is fine
    assert [e.value for e in table.items()][:3] == [b"v0", b"v1", b"v2"]
    with pytest.raises(InvalidStreamArgument):
        table.put("", b"x")


def test_a_second_client_sees_updates_and_races_are_decided_once(
    managers: tuple[StreamManager, StreamManager],
) -> None:
    a, b = managers
    ta, tb = KeyValueTable(a, "lab", "counter"), KeyValueTable(b, "lab", "counter")
    ta.put("n", b"0")
    wins = []

    def increment(table: KeyValueTable, times: int) -> None:
        done = 0
        while done < times:  # optimistic concurrency: read, then write only if unchanged
            entry = table.get("n")
            assert entry is not None
            try:
                table.put("n", b"%d" % (int(entry.value) + 1), version=entry.version)
            except ConditionalCheckFailed:
                continue
            done += 1
            wins.append(1)

    threads = [threading.Thread(target=increment, args=(t, 50)) for t in (ta, tb, ta, tb)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 200
    assert ta.get("n").value == tb.get("n").value == b"200"  # type: ignore[union-attr]


def test_a_table_survives_a_restart(tmp_path: Path) -> None:
    with StreamManager.embedded(tmp_path / "s") as m:
        table = KeyValueTable(m, "lab", "t", partitions=2)
        for i in range(100):
            table.put(f"k{i % 10}", b"%d" % i)
        table.remove("k3")
        before = [(e.key, e.value, e.version) for e in table.items()]
    with StreamManager.embedded(tmp_path / "s") as m:
        again = KeyValueTable(m, "lab", "t")
        assert [(e.key, e.value, e.version) for e in again.items()] == before
        assert again.get("k9").value == b"99"  # type: ignore[union-attr]
