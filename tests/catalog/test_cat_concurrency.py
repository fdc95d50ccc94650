"""Optimistic concurrency: of several updaters holding one etag, exactly one wins (threads and processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from xtremehub.catalog import DatasetPatch, SearchQuery
from xtremehub.catalog.store import SqlCatalog
from xtremehub.errors import PreconditionFailed

SRC = str(Path(__file__).resolve().parents[2] / "src")
N = 8

_UPDATER = """
import sys
from pathlib import Path
from xtremehub.catalog import DatasetPatch, open_catalog
from xtremehub.config import Settings
from xtremehub.errors import PreconditionFailed
url, ds, etag, who = sys.argv[1:5]
with open_catalog(url, settings=Settings(home=Path(sys.argv[5])), upgrade=False) as cat:
    cat.get(ds)  # connected and migrated before the start signal
    print("ready", flush=True)
    sys.stdin.readline()  # the start signal: every updater is ready
    try:
        cat.update(ds, DatasetPatch(title="by " + who), actor=who, if_match=etag)
        print("won")
    except PreconditionFailed:
        print("lost")
"""


def test_threads_one_winner_per_etag(fresh_catalog: SqlCatalog) -> None:
    ds = fresh_catalog.register("s3://lab/shared.fq", actor="alice", facts={}, source_version="e1")
    barrier = threading.Barrier(N)
    results: list[str] = []

    def update(i: int) -> None:
        barrier.wait()
        try:
            fresh_catalog.update(ds.id, DatasetPatch(title=f"by t{i}"), actor=f"t{i}", if_match=ds.etag)
            results.append(f"t{i}")
        except PreconditionFailed:
            results.append("lost")

    threads = [threading.Thread(target=update, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [r for r in results if r != "lost"]
    assert len(results) == N
    assert len(winners) == 1
    assert fresh_catalog.get(ds.id).title == f"by {winners[0]}"


def test_processes_one_winner_per_etag(fresh_catalog: SqlCatalog, tmp_path: Path) -> None:
    ds = fresh_catalog.register("s3://lab/shared.fq", actor="alice", facts={}, source_version="e1")
    url = fresh_catalog._engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _UPDATER, url, ds.id, ds.etag, f"p{i}", str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(3)
    ]
    for p in procs:  # all connected, then all started at once
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready", p.communicate(timeout=120)[1]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outcomes = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outcomes.append(out.strip())
    assert sorted(outcomes) == ["lost", "lost", "won"]
    assert fresh_catalog.get(ds.id).title.startswith("by p")


def test_concurrent_registrations_of_one_url(fresh_catalog: SqlCatalog) -> None:
    barrier = threading.Barrier(N)
    ids: list[str] = []

    def register(i: int) -> None:
        barrier.wait()
        ids.append(fresh_catalog.register("s3://lab/same.fq", actor="alice", facts={"i": i}, source_version="e1").id)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(ids) == N
    assert len(set(ids)) == 1
    assert len(fresh_catalog.versions(ids[0])) == 1
    assert fresh_catalog.search(SearchQuery()).total == 1
