"""Durable controller metadata in SQLite (WAL journal, ``synchronous=FULL``).

Why SQLite rather than a log in a system segment: scaling, transaction commits and reader-group
rebalancing each change several rows that must change together (new epoch + sealed segments +
successor edges; segment ownership + positions). SQLite gives atomic multi-row transactions,
crash safety (a committed transaction survives ``kill -9`` and power loss with
``synchronous=FULL``), indexed look-ups and no extra dependency; metadata traffic is small
(one transaction per scale, per transaction state change and per reader sync), so its fsync
per commit is cheap next to the event data, which goes through the segment store's group commit.

Example:
    >>> import tempfile, pathlib
    >>> db = Metadata(pathlib.Path(tempfile.mkdtemp()) / "controller.db")
    >>> with db.transaction() as cur:
    ...     _ = cur.execute("INSERT INTO scopes VALUES ('s', 0)")
    >>> db.query("SELECT name FROM scopes")
    [('s',)]
    >>> db.close()
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from xtremehub.errors import InvalidStreamArgument
from xtremehub.streams.controller.model import (
    ReaderGroupConfig,
    RetentionPolicy,
    ScalingPolicy,
    StreamConfig,
    StreamCut,
    StreamEncryption,
)

__all__ = [
    "Metadata",
    "check_name",
    "config_from_json",
    "config_to_json",
    "group_config_from_json",
    "group_config_to_json",
    "parse_segment_name",
    "segment_name",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scopes(name TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS streams(
    scope TEXT NOT NULL, name TEXT NOT NULL, config TEXT NOT NULL, sealed INTEGER NOT NULL DEFAULT 0,
    epoch INTEGER NOT NULL DEFAULT 0, next_number INTEGER NOT NULL DEFAULT 0, head TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY(scope, name));
CREATE TABLE IF NOT EXISTS segments(
    scope TEXT NOT NULL, stream TEXT NOT NULL, number INTEGER NOT NULL, epoch INTEGER NOT NULL,
    key_low REAL NOT NULL, key_high REAL NOT NULL, created REAL NOT NULL,
    sealed INTEGER NOT NULL DEFAULT 0, final_length INTEGER, deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(scope, stream, number));
CREATE TABLE IF NOT EXISTS predecessors(
    scope TEXT NOT NULL, stream TEXT NOT NULL, number INTEGER NOT NULL, pred INTEGER NOT NULL,
    PRIMARY KEY(scope, stream, number, pred));
CREATE INDEX IF NOT EXISTS predecessors_by_pred ON predecessors(scope, stream, pred);
CREATE TABLE IF NOT EXISTS txns(
    id TEXT PRIMARY KEY, scope TEXT NOT NULL, stream TEXT NOT NULL, state TEXT NOT NULL,
    lease_deadline REAL NOT NULL, segments TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS retention_cuts(
    scope TEXT NOT NULL, stream TEXT NOT NULL, ts REAL NOT NULL, cut TEXT NOT NULL, written INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reader_groups(
    scope TEXT NOT NULL, name TEXT NOT NULL, config TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY(scope, name));
CREATE TABLE IF NOT EXISTS rg_segments(
    scope TEXT NOT NULL, grp TEXT NOT NULL, segment TEXT NOT NULL, seg_scope TEXT NOT NULL, seg_stream TEXT NOT NULL,
    number INTEGER NOT NULL, offset INTEGER NOT NULL, owner TEXT, state TEXT NOT NULL,
    PRIMARY KEY(scope, grp, segment));
CREATE TABLE IF NOT EXISTS rg_readers(
    scope TEXT NOT NULL, grp TEXT NOT NULL, reader TEXT NOT NULL, last_seen REAL NOT NULL,
    PRIMARY KEY(scope, grp, reader));
CREATE TABLE IF NOT EXISTS rg_checkpoints(
    scope TEXT NOT NULL, grp TEXT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL, created REAL NOT NULL,
    deadline REAL NOT NULL, waiting TEXT NOT NULL, positions TEXT NOT NULL, cuts TEXT NOT NULL,
    PRIMARY KEY(scope, grp, name));
CREATE TABLE IF NOT EXISTS rg_generations(
    scope TEXT NOT NULL, grp TEXT NOT NULL, generation INTEGER NOT NULL, PRIMARY KEY(scope, grp));
"""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_name(kind: str, name: str) -> str:
    """Return ``name`` when it is a valid scope/stream/group/reader name.

    >>> check_name("scope", "sensors-1")
    'sensors-1'
    >>> check_name("stream", "a/b")
    Traceback (most recent call last):
    ...
    xtremehub.errors.InvalidStreamArgument: stream name 'a/b': use 1-128 letters, digits, '_', '.', '-'
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidStreamArgument(f"{kind} name {name!r}: use 1-128 letters, digits, '_', '.', '-'")
    return name


def segment_name(scope: str, stream: str, number: int, epoch: int) -> str:
    """The segment store name of a stream segment.

    >>> segment_name("s", "st", 3, 1)
    's/st/3.#epoch.1'
    """
    return f"{scope}/{stream}/{number}.#epoch.{epoch}"


def parse_segment_name(name: str) -> tuple[str, str, int]:
    """``(scope, stream, number)`` of a stream segment name.

    >>> parse_segment_name("s/st/3.#epoch.1")
    ('s', 'st', 3)
    """
    try:
        scope, stream, last = name.split("/")
        number = int(last.split(".#epoch.", 1)[0])
    except ValueError as exc:
        raise InvalidStreamArgument(f"segment name {name!r} is not <scope>/<stream>/<n>.#epoch.<e>") from exc
    return scope, stream, number


def config_to_json(config: StreamConfig) -> str:
    """Serialise stream policies (and the wrapped data key of an encrypted stream, base64)."""
    raw: dict[str, Any] = {
        "scaling": dataclasses.asdict(config.scaling),
        "retention": dataclasses.asdict(config.retention),
    }
    if config.encryption is not None:
        raw["encryption"] = {
            "dataset": config.encryption.dataset,
            "wrapped_key": base64.b64encode(config.encryption.wrapped_key).decode(),
        }
    return json.dumps(raw)


def config_from_json(text: str) -> StreamConfig:
    """Inverse of :func:`config_to_json`."""
    raw = json.loads(text)
    enc = raw.get("encryption")
    encryption = StreamEncryption(enc["dataset"], base64.b64decode(enc["wrapped_key"])) if enc else None
    return StreamConfig(ScalingPolicy(**raw["scaling"]), RetentionPolicy(**raw["retention"]), encryption)


def group_config_to_json(config: ReaderGroupConfig) -> str:
    """Serialise a reader-group configuration."""
    return json.dumps(
        {
            "streams": list(config.streams),
            "start": config.start,
            "cuts": [c.to_json() for c in config.cuts],
            "reader_timeout": config.reader_timeout,
        }
    )


def group_config_from_json(text: str) -> ReaderGroupConfig:
    """Inverse of :func:`group_config_to_json`."""
    raw = json.loads(text)
    return ReaderGroupConfig(
        tuple(raw["streams"]), raw["start"], tuple(StreamCut.from_json(c) for c in raw["cuts"]), raw["reader_timeout"]
    )


class Metadata:
    """One SQLite connection shared by the controller's threads, serialised by a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Cursor]:
        """An atomic read-write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``).

        ``durable=False`` skips the fsync of this commit (``synchronous=NORMAL``): it survives a
        process crash but may be lost, whole, with the last moments before a power loss. Used
        for reader heartbeats and positions, where losing the latest means re-reading a little.
        """
        with self._lock:
            cur = self._conn.cursor()
            if not durable:
                cur.execute("PRAGMA synchronous=NORMAL")
            try:
                cur.execute("BEGIN IMMEDIATE")
                try:
                    yield cur
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                cur.execute("COMMIT")
            finally:
                if not durable:
                    cur.execute("PRAGMA synchronous=FULL")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query."""
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
