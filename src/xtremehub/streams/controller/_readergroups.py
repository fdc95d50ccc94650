"""Reader-group state: which reader owns which segment, at which position, and rebalancing.

State is one row per segment the group has reached (``unassigned``, ``assigned`` to a reader, or
``completed``) plus one row per online reader. A successor segment enters the group only when
all its predecessors are completed, which is what keeps per-key order across scaling. Segments
that were already behind the group's start (ancestors of its start cut) are entered as
completed when the group is created, so successors of a mix of old and new segments are found.

Fair share: with ``n`` readable segments and ``r`` readers, no reader keeps more than
``ceil(n / r)``; the extra ones go back to the pool at the position the reader just reported,
and readers with fewer take from the pool.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
from collections.abc import Callable, Iterable

from xtremehub.errors import InvalidStreamArgument, ReaderGroupNotFound, ReaderGroupReset
from xtremehub.streams.controller._metadata import (
    Metadata,
    check_name,
    group_config_from_json,
    group_config_to_json,
    parse_segment_name,
)
from xtremehub.streams.controller.model import (
    ReaderAssignment,
    ReaderGroupConfig,
    ReaderGroupSegment,
    ReaderGroupState,
    SegmentRange,
    StreamCut,
)

__all__ = ["ReaderGroupOps"]

log = logging.getLogger(__name__)


def _split_stream(qualified: str) -> tuple[str, str]:
    scope, sep, stream = qualified.partition("/")
    if not sep:
        raise InvalidStreamArgument(f"reader group stream {qualified!r} must be 'scope/stream'")
    return scope, stream


class ReaderGroupOps:
    """Reader-group operations; mixed into :class:`~xtremehub.streams.controller.Controller`."""

    _db: Metadata
    _lock: threading.RLock
    _clock: Callable[[], float]

    # provided by StreamOps
    _require_scope: Callable[[str], None]
    _stream_row: Callable[[str, str], tuple[str, int, int, int, str, float]]
    _segment: Callable[[str, str, int], SegmentRange]
    _ancestors: Callable[[str, str, Iterable[int]], set[int]]
    _predecessors: Callable[[str, str, int], list[int]]
    _successor_numbers: Callable[[str, str, int], list[int]]
    _validate_cut: Callable[[str, str, StreamCut], dict[int, int]]
    get_head_cut: Callable[[str, str], StreamCut]
    get_tail_cut: Callable[[str, str], StreamCut]

    # provided by CheckpointOps
    _waiting_checkpoint: Callable[[sqlite3.Cursor, str, str, str], str | None]
    _checkpoint_positions: Callable[..., None]

    # -- helpers --------------------------------------------------------------------------
    def _group_config(self, scope: str, group: str) -> ReaderGroupConfig:
        self._require_scope(scope)
        check_name("reader group", group)
        rows = self._db.query("SELECT config FROM reader_groups WHERE scope = ? AND name = ?", (scope, group))
        if not rows:
            raise ReaderGroupNotFound(f"reader group {scope}/{group} does not exist")
        return group_config_from_json(str(rows[0][0]))

    def _rows(
        self, scope: str, group: str, where: str = "1", params: tuple[object, ...] = ()
    ) -> list[tuple[str, int, str | None, str]]:
        rows = self._db.query(
            f"SELECT segment, offset, owner, state FROM rg_segments WHERE scope = ? AND grp = ? AND {where} "  # noqa: S608
            "ORDER BY seg_scope, seg_stream, number",
            (scope, group, *params),
        )
        return [(str(s), int(o), None if w is None else str(w), str(st)) for s, o, w, st in rows]

    # -- groups ---------------------------------------------------------------------------
    def _start_rows(self, scope: str, group: str, config: ReaderGroupConfig) -> list[tuple[object, ...]]:
        """The ``rg_segments`` rows of a group positioned at its configured start."""
        rows: list[tuple[object, ...]] = []
        cuts = {(c.scope, c.stream): c for c in config.cuts}
        for qualified in config.streams:
            s_scope, s_stream = _split_stream(qualified)
            self._stream_row(s_scope, s_stream)
            if config.start == "head":
                cut = self.get_head_cut(s_scope, s_stream)
            elif config.start == "tail":
                cut = self.get_tail_cut(s_scope, s_stream)
            elif (s_scope, s_stream) in cuts:
                cut = cuts[(s_scope, s_stream)]
            else:
                raise InvalidStreamArgument(f"reader group {scope}/{group}: no start cut for stream {qualified}")
            numbers = self._validate_cut(s_scope, s_stream, cut)
            for number, offset in numbers.items():
                name = self._segment(s_scope, s_stream, number).name
                rows.append((scope, group, name, s_scope, s_stream, number, offset, None, "unassigned"))
            for number in self._ancestors(s_scope, s_stream, numbers) - set(numbers):
                name = self._segment(s_scope, s_stream, number).name
                rows.append((scope, group, name, s_scope, s_stream, number, 0, None, "completed"))
        return rows

    def create_reader_group(self, scope: str, group: str, config: ReaderGroupConfig) -> bool:
        if not isinstance(config, ReaderGroupConfig):
            raise InvalidStreamArgument(f"reader group config must be a ReaderGroupConfig, not {type(config).__name__}")
        with self._lock:
            self._require_scope(scope)
            check_name("reader group", group)
            if self._db.query("SELECT 1 FROM reader_groups WHERE scope = ? AND name = ?", (scope, group)):
                return False
            rows = self._start_rows(scope, group, config)
            with self._db.transaction() as cur:
                cur.execute(
                    "INSERT INTO reader_groups VALUES (?, ?, ?, ?)",
                    (scope, group, group_config_to_json(config), self._clock()),
                )
                cur.executemany("INSERT INTO rg_segments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            return True

    def reset_reader_group(self, scope: str, group: str, config: ReaderGroupConfig) -> None:
        if not isinstance(config, ReaderGroupConfig):
            raise InvalidStreamArgument(f"reader group config must be a ReaderGroupConfig, not {type(config).__name__}")
        with self._lock:
            self._group_config(scope, group)
            rows = self._start_rows(scope, group, config)
            generation = self._generation(scope, group) + 1
            with self._db.transaction() as cur:
                cur.execute(
                    "UPDATE reader_groups SET config = ? WHERE scope = ? AND name = ?",
                    (group_config_to_json(config), scope, group),
                )
                cur.execute("DELETE FROM rg_segments WHERE scope = ? AND grp = ?", (scope, group))
                cur.execute("DELETE FROM rg_readers WHERE scope = ? AND grp = ?", (scope, group))
                cur.execute(
                    "DELETE FROM rg_checkpoints WHERE scope = ? AND grp = ? AND state = 'pending'", (scope, group)
                )
                cur.execute("INSERT OR REPLACE INTO rg_generations VALUES (?, ?, ?)", (scope, group, generation))
                cur.executemany("INSERT INTO rg_segments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            log.info("reader group %s/%s reset to %s (generation %d)", scope, group, config.start, generation)

    def _generation(self, scope: str, group: str) -> int:
        rows = self._db.query("SELECT generation FROM rg_generations WHERE scope = ? AND grp = ?", (scope, group))
        return int(rows[0][0]) if rows else 0

    def delete_reader_group(self, scope: str, group: str) -> None:
        with self._lock:
            self._group_config(scope, group)
            with self._db.transaction() as cur:
                cur.execute("DELETE FROM reader_groups WHERE scope = ? AND name = ?", (scope, group))
                cur.execute("DELETE FROM rg_segments WHERE scope = ? AND grp = ?", (scope, group))
                cur.execute("DELETE FROM rg_readers WHERE scope = ? AND grp = ?", (scope, group))
                cur.execute("DELETE FROM rg_checkpoints WHERE scope = ? AND grp = ?", (scope, group))
                cur.execute("DELETE FROM rg_generations WHERE scope = ? AND grp = ?", (scope, group))

    def list_reader_groups(self, scope: str) -> list[str]:
        self._require_scope(scope)
        return [
            str(r[0]) for r in self._db.query("SELECT name FROM reader_groups WHERE scope = ? ORDER BY name", (scope,))
        ]

    def get_reader_group(self, scope: str, group: str) -> ReaderGroupState:
        config = self._group_config(scope, group)
        readers = self._db.query(
            "SELECT reader FROM rg_readers WHERE scope = ? AND grp = ? ORDER BY reader", (scope, group)
        )
        segments = []
        for name, offset, owner, state in self._rows(scope, group):
            s_scope, s_stream, _ = parse_segment_name(name)
            segments.append(ReaderGroupSegment(name, s_scope, s_stream, offset, owner, state))  # type: ignore[arg-type]
        return ReaderGroupState(scope, group, config, tuple(str(r[0]) for r in readers), tuple(segments))

    # -- readers --------------------------------------------------------------------------
    def sync_reader(
        self,
        scope: str,
        group: str,
        reader: str,
        positions: dict[str, int],
        completed: list[str],
        checkpoint: str | None = None,
        generation: int | None = None,
    ) -> ReaderAssignment:
        check_name("reader", reader)
        with self._lock:
            self._group_config(scope, group)
            current = self._generation(scope, group)
            if generation is not None and generation != current:
                raise ReaderGroupReset(
                    f"reader {reader} of group {scope}/{group} joined generation {generation}, but the group was "
                    f"reset since (generation {current}): create a new reader"
                )
            durable = checkpoint is not None
            with self._db.transaction(durable=durable) as cur:
                cur.execute(
                    "INSERT OR REPLACE INTO rg_readers VALUES (?, ?, ?, ?)", (scope, group, reader, self._clock())
                )
                cur.executemany(
                    "UPDATE rg_segments SET offset = ? WHERE scope = ? AND grp = ? AND segment = ? AND owner = ? "
                    "AND state = 'assigned'",
                    [(int(off), scope, group, seg, reader) for seg, off in positions.items()],
                )
                waiting = self._waiting_checkpoint(cur, scope, group, reader)
                for seg in completed:
                    cur.execute(
                        "UPDATE rg_segments SET state = 'completed', owner = NULL WHERE scope = ? AND grp = ? "
                        "AND segment = ? AND owner = ?",
                        (scope, group, seg, reader),
                    )
                    if cur.rowcount:
                        if waiting is not None:  # read to its end before the reader's marker
                            s_scope, s_stream, number = parse_segment_name(seg)
                            end = self._final_length(s_scope, s_stream, number)
                            self._checkpoint_positions(cur, scope, group, reader, {seg: end}, done=False)
                        self._add_ready_successors(cur, scope, group, seg)
                if checkpoint is not None and checkpoint == waiting:
                    owned_now = self._owned(cur, scope, group, reader)
                    self._checkpoint_positions(cur, scope, group, reader, owned_now, done=True)
                    waiting = None
                if waiting is None:  # a reader yet to record its checkpoint keeps exactly what it has
                    self._rebalance(cur, scope, group, reader)
            owned = self._rows(scope, group, "owner = ? AND state = 'assigned'", (reader,))
            names = tuple(name for name, _, _, _ in owned)
            acquired = tuple((name, off) for name, off, _, _ in owned if name not in positions)
            released = tuple(seg for seg in positions if seg not in names)
            return ReaderAssignment(names, acquired, released, waiting, current)

    @staticmethod
    def _owned(cur: sqlite3.Cursor, scope: str, group: str, reader: str) -> dict[str, int]:
        rows = cur.execute(
            "SELECT segment, offset FROM rg_segments WHERE scope = ? AND grp = ? AND owner = ? AND state = 'assigned'",
            (scope, group, reader),
        ).fetchall()
        return {str(seg): int(off) for seg, off in rows}

    def _add_ready_successors(self, cur: sqlite3.Cursor, scope: str, group: str, segment: str) -> None:
        s_scope, s_stream, number = parse_segment_name(segment)
        for succ in self._successor_numbers(s_scope, s_stream, number):
            preds = [self._segment(s_scope, s_stream, p).name for p in self._predecessors(s_scope, s_stream, succ)]
            marks = ",".join("?" * len(preds))
            done = cur.execute(
                f"SELECT COUNT(*) FROM rg_segments WHERE scope = ? AND grp = ? AND state = 'completed' "  # noqa: S608
                f"AND segment IN ({marks})",
                (scope, group, *preds),
            ).fetchone()[0]
            if done == len(preds):
                name = self._segment(s_scope, s_stream, succ).name
                cur.execute(
                    "INSERT OR IGNORE INTO rg_segments VALUES (?, ?, ?, ?, ?, ?, 0, NULL, 'unassigned')",
                    (scope, group, name, s_scope, s_stream, succ),
                )

    def _rebalance(self, cur: sqlite3.Cursor, scope: str, group: str, reader: str) -> None:
        readers = cur.execute("SELECT COUNT(*) FROM rg_readers WHERE scope = ? AND grp = ?", (scope, group)).fetchone()[
            0
        ]
        readable = cur.execute(
            "SELECT COUNT(*) FROM rg_segments WHERE scope = ? AND grp = ? AND state != 'completed'", (scope, group)
        ).fetchone()[0]
        fair = math.ceil(readable / max(readers, 1))
        mine = [
            str(r[0])
            for r in cur.execute(
                "SELECT segment FROM rg_segments WHERE scope = ? AND grp = ? AND owner = ? AND state = 'assigned' "
                "ORDER BY seg_scope, seg_stream, number",
                (scope, group, reader),
            ).fetchall()
        ]
        if len(mine) > fair:
            for seg in mine[fair:]:
                cur.execute(
                    "UPDATE rg_segments SET owner = NULL, state = 'unassigned' "
                    "WHERE scope = ? AND grp = ? AND segment = ?",
                    (scope, group, seg),
                )
        elif len(mine) < fair:
            free = cur.execute(
                "SELECT segment FROM rg_segments WHERE scope = ? AND grp = ? AND state = 'unassigned' "
                "ORDER BY seg_scope, seg_stream, number LIMIT ?",
                (scope, group, fair - len(mine)),
            ).fetchall()
            for (seg,) in free:
                cur.execute(
                    "UPDATE rg_segments SET owner = ?, state = 'assigned' WHERE scope = ? AND grp = ? AND segment = ?",
                    (reader, scope, group, seg),
                )

    def reader_offline(self, scope: str, group: str, reader: str, positions: dict[str, int] | None) -> None:
        with self._lock:
            self._group_config(scope, group)
            with self._db.transaction() as cur:
                cur.executemany(
                    "UPDATE rg_segments SET offset = ? WHERE scope = ? AND grp = ? AND segment = ? AND owner = ? "
                    "AND state = 'assigned'",
                    [(int(off), scope, group, seg, reader) for seg, off in (positions or {}).items()],
                )
                # a reader yet to record a checkpoint hands its positions over to it
                self._checkpoint_positions(cur, scope, group, reader, self._owned(cur, scope, group, reader), done=True)
                cur.execute(
                    "UPDATE rg_segments SET owner = NULL, state = 'unassigned' "
                    "WHERE scope = ? AND grp = ? AND owner = ?",
                    (scope, group, reader),
                )
                cur.execute("DELETE FROM rg_readers WHERE scope = ? AND grp = ? AND reader = ?", (scope, group, reader))
            log.info("reader %s of group %s/%s is offline", reader, scope, group)

    def get_reader_group_cuts(self, scope: str, group: str) -> list[StreamCut]:
        with self._lock:
            config = self._group_config(scope, group)
            rows = self._rows(scope, group)
            present = {name for name, _, _, _ in rows}
            by_stream: dict[tuple[str, str], list[tuple[str, int]]] = {}
            for name, stored, _, state in rows:
                s_scope, s_stream, number = parse_segment_name(name)
                offset = stored
                if state == "completed":
                    successors = self._successor_numbers(s_scope, s_stream, number)
                    names = {self._segment(s_scope, s_stream, n).name for n in successors}
                    if successors and names <= present:
                        continue  # wholly behind the group's frontier
                    offset = self._final_length(s_scope, s_stream, number)
                by_stream.setdefault((s_scope, s_stream), []).append((name, offset))
            return [
                StreamCut(*_split_stream(q), tuple(sorted(by_stream.get(_split_stream(q), [])))) for q in config.streams
            ]

    def _final_length(self, scope: str, stream: str, number: int) -> int:
        rows = self._db.query(
            "SELECT final_length FROM segments WHERE scope = ? AND stream = ? AND number = ?", (scope, stream, number)
        )
        return int(rows[0][0] or 0) if rows else 0

    def _expire_readers(self) -> None:
        now = self._clock()
        for scope, group, config in self._db.query("SELECT scope, name, config FROM reader_groups"):
            timeout = group_config_from_json(str(config)).reader_timeout
            for (reader,) in self._db.query(
                "SELECT reader FROM rg_readers WHERE scope = ? AND grp = ? AND last_seen < ?",
                (scope, group, now - timeout),
            ):
                log.warning("reader %s of group %s/%s silent for %.1f s: offline", reader, scope, group, timeout)
                self.reader_offline(str(scope), str(group), str(reader), None)
