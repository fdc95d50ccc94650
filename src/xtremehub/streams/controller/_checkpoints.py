"""Reader-group checkpoints: one consistent cut across every reader of a group.

A checkpoint starts *pending* with the group's online readers as ``waiting`` and, as its
positions, the group's stored cut at that moment (the segments nobody owns count with their
stored positions). Each waiting reader learns the checkpoint at its next sync, returns a marker
from ``read_next`` before any further event, and records the positions it held when it returned
the marker at the sync after it. When no reader is left waiting, the checkpoint is *completed*
and its positions become one :class:`~xtremehub.streams.controller.StreamCut` per stream.

Why the cut is consistent (every event before it was returned before its reader's marker, no
event after it was): a waiting reader neither acquires nor releases segments (the pool may
hold segments a recorded reader has read past its marker), so each segment a waiting reader
owns is read only by it until it records; what a waiting reader reads to the end is recorded at
the segment's final length; a waiting reader that goes offline records the positions it hands
over; readers that join after the start, or that have recorded, only ever read after the cut.
The key set of the positions never changes, so the result always covers each stream once.

One checkpoint is in flight per group at a time: initiating another one while one is pending
raises :class:`~xtremehub.errors.CheckpointFailed` (the caller retries after it ends). A
pending checkpoint past its deadline is cancelled (its row deleted) by the initiator or by the
controller's maintenance; completed ones are kept until deleted, and survive restarts.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable

from xtremehub.errors import AlreadyExists, CheckpointFailed, CheckpointNotFound, InvalidStreamArgument
from xtremehub.streams.controller._metadata import Metadata, check_name, parse_segment_name
from xtremehub.streams.controller.model import Checkpoint, ReaderGroupConfig, StreamCut

__all__ = ["CheckpointOps"]

log = logging.getLogger(__name__)

_COLUMNS = "name, state, created, deadline, waiting, cuts"


class CheckpointOps:
    """Checkpoint operations; mixed into :class:`~xtremehub.streams.controller.Controller`."""

    _db: Metadata
    _lock: threading.RLock
    _clock: Callable[[], float]

    # provided by ReaderGroupOps
    _group_config: Callable[[str, str], ReaderGroupConfig]
    get_reader_group_cuts: Callable[[str, str], list[StreamCut]]

    # -- public operations ----------------------------------------------------------------
    def initiate_checkpoint(self, scope: str, group: str, name: str, timeout: float) -> Checkpoint:
        check_name("checkpoint", name)
        if not timeout > 0:
            raise InvalidStreamArgument(f"checkpoint {name!r}: timeout must be > 0 seconds, got {timeout}")
        with self._lock:
            self._group_config(scope, group)
            rows = self._db.query(
                "SELECT name, state FROM rg_checkpoints WHERE scope = ? AND grp = ? "
                "AND (name = ? OR state = 'pending')",
                (scope, group, name),
            )
            for other, state in rows:
                if other == name:
                    raise AlreadyExists(f"checkpoint {name!r} of reader group {scope}/{group} exists ({state})")
            if rows:
                raise CheckpointFailed(
                    f"reader group {scope}/{group}: checkpoint {rows[0][0]!r} is in progress; "
                    f"one checkpoint at a time, initiate {name!r} after it ends"
                )
            readers = [
                str(r[0])
                for r in self._db.query(
                    "SELECT reader FROM rg_readers WHERE scope = ? AND grp = ? ORDER BY reader", (scope, group)
                )
            ]
            positions = {seg: off for cut in self.get_reader_group_cuts(scope, group) for seg, off in cut.positions}
            now = self._clock()
            with self._db.transaction() as cur:
                cur.execute(
                    "INSERT INTO rg_checkpoints VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, '[]')",
                    (scope, group, name, now, now + timeout, json.dumps(readers), json.dumps(positions)),
                )
                if not readers:
                    self._complete_checkpoint(cur, scope, group, name, positions)
            log.info("checkpoint %s of group %s/%s initiated; waiting for %s", name, scope, group, readers)
            return self.get_checkpoint(scope, group, name)

    def get_checkpoint(self, scope: str, group: str, name: str) -> Checkpoint:
        self._group_config(scope, group)
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM rg_checkpoints WHERE scope = ? AND grp = ? AND name = ?",  # noqa: S608
            (scope, group, name),
        )
        if not rows:
            raise CheckpointNotFound(
                f"checkpoint {name!r} of reader group {scope}/{group} does not exist (never initiated, "
                "cancelled after its timeout, or deleted)"
            )
        return self._checkpoint(scope, group, rows[0])

    def list_checkpoints(self, scope: str, group: str) -> list[Checkpoint]:
        self._group_config(scope, group)
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM rg_checkpoints WHERE scope = ? AND grp = ? ORDER BY created, name",  # noqa: S608
            (scope, group),
        )
        return [self._checkpoint(scope, group, row) for row in rows]

    def cancel_checkpoint(self, scope: str, group: str, name: str) -> bool:
        with self._lock:
            self._group_config(scope, group)
            with self._db.transaction() as cur:
                cur.execute(
                    "DELETE FROM rg_checkpoints WHERE scope = ? AND grp = ? AND name = ? AND state = 'pending'",
                    (scope, group, name),
                )
                cancelled = cur.rowcount == 1
            if cancelled:
                log.warning("checkpoint %s of group %s/%s cancelled", name, scope, group)
            return cancelled

    def delete_checkpoint(self, scope: str, group: str, name: str) -> bool:
        with self._lock:
            self._group_config(scope, group)
            with self._db.transaction() as cur:
                cur.execute("DELETE FROM rg_checkpoints WHERE scope = ? AND grp = ? AND name = ?", (scope, group, name))
                return cur.rowcount == 1

    # -- hooks for reader-group operations (called inside their transactions) ------------
    @staticmethod
    def _waiting_checkpoint(cur: sqlite3.Cursor, scope: str, group: str, reader: str) -> str | None:
        """The pending checkpoint ``reader`` has not recorded yet, if any."""
        row = cur.execute(
            "SELECT name, waiting FROM rg_checkpoints WHERE scope = ? AND grp = ? AND state = 'pending'",
            (scope, group),
        ).fetchone()
        if row is None or reader not in json.loads(row[1]):
            return None
        return str(row[0])

    def _checkpoint_positions(
        self, cur: sqlite3.Cursor, scope: str, group: str, reader: str, offsets: dict[str, int], *, done: bool
    ) -> None:
        """Record ``offsets`` for the checkpoint ``reader`` is waiting for; ``done``: it has recorded all."""
        row = cur.execute(
            "SELECT name, waiting, positions FROM rg_checkpoints WHERE scope = ? AND grp = ? AND state = 'pending'",
            (scope, group),
        ).fetchone()
        if row is None:
            return
        name, waiting, positions = str(row[0]), json.loads(row[1]), json.loads(row[2])
        if reader not in waiting:
            return
        for segment, offset in offsets.items():
            if segment not in positions:  # a waiting reader only holds segments of the starting cut
                log.warning("checkpoint %s: reader %s reported %s outside its cut; ignored", name, reader, segment)
                continue
            positions[segment] = int(offset)
        if done:
            waiting.remove(reader)
        cur.execute(
            "UPDATE rg_checkpoints SET waiting = ?, positions = ? WHERE scope = ? AND grp = ? AND name = ?",
            (json.dumps(waiting), json.dumps(positions), scope, group, name),
        )
        if done:
            log.info("checkpoint %s of group %s/%s: reader %s recorded", name, scope, group, reader)
            if not waiting:
                self._complete_checkpoint(cur, scope, group, name, positions)

    def _complete_checkpoint(
        self, cur: sqlite3.Cursor, scope: str, group: str, name: str, positions: dict[str, int]
    ) -> None:
        by_stream: dict[str, list[tuple[str, int]]] = {}
        for segment, offset in positions.items():
            s_scope, s_stream, _ = parse_segment_name(segment)
            by_stream.setdefault(f"{s_scope}/{s_stream}", []).append((segment, int(offset)))
        cuts = []
        for qualified in self._group_config(scope, group).streams:
            s_scope, _, s_stream = qualified.partition("/")
            cuts.append(StreamCut(s_scope, s_stream, tuple(sorted(by_stream.get(qualified, [])))).to_json())
        cur.execute(
            "UPDATE rg_checkpoints SET state = 'completed', waiting = '[]', cuts = ? "
            "WHERE scope = ? AND grp = ? AND name = ?",
            (json.dumps(cuts), scope, group, name),
        )
        log.info("checkpoint %s of group %s/%s completed", name, scope, group)

    def _expire_checkpoints(self) -> None:
        now = self._clock()
        for scope, group, name in self._db.query(
            "SELECT scope, grp, name FROM rg_checkpoints WHERE state = 'pending' AND deadline < ?", (now,)
        ):
            log.warning("checkpoint %s of group %s/%s past its deadline", name, scope, group)
            self.cancel_checkpoint(str(scope), str(group), str(name))

    @staticmethod
    def _checkpoint(scope: str, group: str, row: tuple[object, ...]) -> Checkpoint:
        name, state, created, deadline, waiting, cuts = row
        return Checkpoint(
            scope,
            group,
            str(name),
            "completed" if state == "completed" else "pending",
            float(str(created)),
            float(str(deadline)),
            tuple(json.loads(str(waiting))),
            tuple(StreamCut.from_json(c) for c in json.loads(str(cuts))),
        )
