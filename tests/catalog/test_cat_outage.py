"""A PostgreSQL server that goes away mid-run: CatalogUnavailable, nothing half-written, recovery."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from xtremehub.catalog import SearchQuery, open_catalog
from xtremehub.catalog.store import SqlCatalog
from xtremehub.catalog.store.schema import dataset_tags, dataset_versions, datasets
from xtremehub.config import Settings
from xtremehub.errors import CatalogUnavailable
from xtremehub.testing.postgres import PostgresServer


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of this test's own (it is stopped mid-run; the session's server is not)."""
    with PostgresServer.start() as server:
        yield server


def test_server_stopped_mid_run_and_restarted(own_server: PostgresServer, tmp_path: Path) -> None:
    cat: SqlCatalog = open_catalog(own_server.create_database(), settings=Settings(home=tmp_path))
    done: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            url = f"s3://lab/outage/{i}.fq"
            try:
                cat.register(url, actor="alice", tags=[f"t{i}", "outage"], facts={"n": i}, source_version="e1")
                cat.register(url, actor="alice", facts={"n": -i}, source_version="e2")  # a second version
                done.append(url)
                i += 1
            except CatalogUnavailable as exc:
                failures.append(exc)
                time.sleep(0.05)
            except BaseException as exc:  # anything else fails the test below
                failures.append(exc)
                return

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(1.5)
        own_server.stop()
        before = len(done)
        with pytest.raises(CatalogUnavailable, match="cannot be reached"):
            cat.search(SearchQuery(text="outage"))
        with pytest.raises(CatalogUnavailable):
            cat.register("s3://lab/while-down.fq", actor="alice", facts={}, source_version="e1")
        time.sleep(1.0)
        assert len(done) <= before + 1  # at most the one in flight when it stopped
        own_server.start_again()
        deadline = time.monotonic() + 30
        while len(done) < before + 5 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(60)
    assert failures, "the writer never saw the server go away"
    assert all(isinstance(f, CatalogUnavailable) for f in failures), failures
    assert len(done) >= before + 5, "the writer did not recover after the restart"
    # every registration is whole: both versions and both tags, or (for the one cut off) consistent
    with cat._engine.connect() as conn:
        rows = conn.execute(sa.select(datasets.c.pk, datasets.c.url, datasets.c.latest_version)).all()
        for pk, url, latest in rows:
            versions = conn.execute(
                sa.select(sa.func.count()).select_from(dataset_versions).where(dataset_versions.c.dataset_pk == pk)
            ).scalar()
            tags = conn.execute(
                sa.select(sa.func.count()).select_from(dataset_tags).where(dataset_tags.c.dataset_pk == pk)
            ).scalar()
            assert versions == latest, url
            assert tags == 2, url
    registered = {url for _, url, _ in rows}
    assert set(done) <= registered  # nothing acknowledged was lost
    assert "s3://lab/while-down.fq" not in registered
    assert cat.search(SearchQuery(text="outage", limit=1)).total == len(rows)
    cat.close()


def test_unreachable_database_at_open(tmp_path: Path) -> None:
    from xtremehub.testing.seaweedfs import free_port

    with pytest.raises(CatalogUnavailable, match="cannot be reached"):
        open_catalog(f"postgresql://xhub@127.0.0.1:{free_port()}/none", settings=Settings(home=tmp_path))
