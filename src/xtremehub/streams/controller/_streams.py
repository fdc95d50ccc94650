"""Scopes, streams, segments, scaling, stream cuts and truncation (the controller's stream half)."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterable

from xtremehub.errors import (
    InvalidStreamArgument,
    ScopeNotFound,
    SegmentNotFound,
    SegmentSealed,
    StreamNotFound,
)
from xtremehub.streams.controller._metadata import (
    Metadata,
    check_name,
    config_from_json,
    config_to_json,
    parse_segment_name,
    segment_name,
)
from xtremehub.streams.controller.model import (
    SegmentRange,
    StreamConfig,
    StreamCut,
    StreamInfo,
    SuccessorInfo,
)
from xtremehub.streams.segmentstore.contract import SegmentStoreContract

__all__ = ["StreamOps", "even_ranges"]

log = logging.getLogger(__name__)

_SEGMENT_COLUMNS = "number, epoch, key_low, key_high"


def even_ranges(low: float, high: float, parts: int) -> list[tuple[float, float]]:
    """Split ``[low, high)`` into ``parts`` equal ranges (the last ends exactly at ``high``).

    >>> even_ranges(0.0, 1.0, 4)
    [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]
    """
    step = (high - low) / parts
    edges = [low + i * step for i in range(parts)] + [high]
    return [(edges[i], edges[i + 1]) for i in range(parts)]


class StreamOps:
    """Stream and segment operations; mixed into :class:`~xtremehub.streams.controller.Controller`."""

    _db: Metadata
    _store: SegmentStoreContract
    _lock: threading.RLock
    _clock: Callable[[], float]
    _abort_open_transactions: Callable[[str, str], None]  # provided by TxnOps

    # -- helpers --------------------------------------------------------------------------
    def _require_scope(self, scope: str) -> None:
        check_name("scope", scope)
        if not self._db.query("SELECT 1 FROM scopes WHERE name = ?", (scope,)):
            raise ScopeNotFound(f"scope {scope!r} does not exist")

    def _stream_row(self, scope: str, stream: str) -> tuple[str, int, int, int, str, float]:
        """``(config, sealed, epoch, next_number, head, created)``; raises when absent."""
        self._require_scope(scope)
        check_name("stream", stream)
        rows = self._db.query(
            "SELECT config, sealed, epoch, next_number, head, created FROM streams WHERE scope = ? AND name = ?",
            (scope, stream),
        )
        if not rows:
            raise StreamNotFound(f"stream {scope}/{stream} does not exist")
        config, sealed, epoch, next_number, head, created = rows[0]
        return str(config), int(sealed), int(epoch), int(next_number), str(head), float(created)

    @staticmethod
    def _range(scope: str, stream: str, row: Iterable[object]) -> SegmentRange:
        number, epoch, low, high = row
        assert isinstance(number, int)
        assert isinstance(epoch, int)
        assert isinstance(low, float)
        assert isinstance(high, float)
        return SegmentRange(segment_name(scope, stream, number, epoch), number, epoch, low, high)

    def _segment(self, scope: str, stream: str, number: int) -> SegmentRange:
        rows = self._db.query(
            f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE scope = ? AND stream = ? AND number = ?",  # noqa: S608
            (scope, stream, number),
        )
        if not rows:
            raise SegmentNotFound(f"segment {number} of stream {scope}/{stream} does not exist")
        return self._range(scope, stream, rows[0])

    def _number_of(self, scope: str, stream: str, name: str) -> int:
        seg_scope, seg_stream, number = parse_segment_name(name)
        if (seg_scope, seg_stream) != (scope, stream):
            raise InvalidStreamArgument(f"segment {name!r} is not a segment of stream {scope}/{stream}")
        return number

    def _predecessors(self, scope: str, stream: str, number: int) -> list[int]:
        rows = self._db.query(
            "SELECT pred FROM predecessors WHERE scope = ? AND stream = ? AND number = ?", (scope, stream, number)
        )
        return [int(r[0]) for r in rows]

    def _successor_numbers(self, scope: str, stream: str, number: int) -> list[int]:
        rows = self._db.query(
            "SELECT number FROM predecessors WHERE scope = ? AND stream = ? AND pred = ? ORDER BY number",
            (scope, stream, number),
        )
        return [int(r[0]) for r in rows]

    def _ancestors(self, scope: str, stream: str, numbers: Iterable[int]) -> set[int]:
        """Every segment transitively replaced by ``numbers`` (not including them)."""
        todo, seen = list(numbers), set[int]()
        while todo:
            for pred in self._predecessors(scope, stream, todo.pop()):
                if pred not in seen:
                    seen.add(pred)
                    todo.append(pred)
        return seen

    def _active(self, scope: str, stream: str) -> list[SegmentRange]:
        rows = self._db.query(
            f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE scope = ? AND stream = ? AND sealed = 0 AND deleted = 0 "  # noqa: S608
            "ORDER BY key_low",
            (scope, stream),
        )
        return [self._range(scope, stream, r) for r in rows]

    # -- scopes ---------------------------------------------------------------------------
    def create_scope(self, scope: str) -> bool:
        check_name("scope", scope)
        with self._db.transaction() as cur:
            cur.execute("INSERT OR IGNORE INTO scopes VALUES (?, ?)", (scope, self._clock()))
            return cur.rowcount == 1

    def delete_scope(self, scope: str) -> bool:
        check_name("scope", scope)
        with self._db.transaction() as cur:
            if cur.execute("SELECT 1 FROM streams WHERE scope = ? LIMIT 1", (scope,)).fetchall():
                raise InvalidStreamArgument(f"scope {scope!r} still has streams; delete them first")
            cur.execute("DELETE FROM reader_groups WHERE scope = ?", (scope,))
            cur.execute("DELETE FROM rg_segments WHERE scope = ?", (scope,))
            cur.execute("DELETE FROM rg_readers WHERE scope = ?", (scope,))
            cur.execute("DELETE FROM rg_checkpoints WHERE scope = ?", (scope,))
            cur.execute("DELETE FROM rg_generations WHERE scope = ?", (scope,))
            cur.execute("DELETE FROM scopes WHERE name = ?", (scope,))
            return cur.rowcount == 1

    def list_scopes(self) -> list[str]:
        return [str(r[0]) for r in self._db.query("SELECT name FROM scopes ORDER BY name")]

    # -- streams --------------------------------------------------------------------------
    def create_stream(self, scope: str, stream: str, config: StreamConfig) -> bool:
        if not isinstance(config, StreamConfig):
            raise InvalidStreamArgument(f"stream config must be a StreamConfig, not {type(config).__name__}")
        with self._lock:
            self._require_scope(scope)
            check_name("stream", stream)
            if self._db.query("SELECT 1 FROM streams WHERE scope = ? AND name = ?", (scope, stream)):
                return False
            ranges = even_ranges(0.0, 1.0, config.scaling.min_segments)
            names = [segment_name(scope, stream, i, 0) for i in range(len(ranges))]
            for name in names:  # store first: a crash leaves at most orphans that recovery removes
                self._store.create_segment(name)
            now = self._clock()
            head = json.dumps(dict.fromkeys(names, 0))
            with self._db.transaction() as cur:
                cur.execute(
                    "INSERT INTO streams VALUES (?, ?, ?, 0, 0, ?, ?, ?)",
                    (scope, stream, config_to_json(config), len(ranges), head, now),
                )
                cur.executemany(
                    "INSERT INTO segments VALUES (?, ?, ?, 0, ?, ?, ?, 0, NULL, 0)",
                    [(scope, stream, i, lo, hi, now) for i, (lo, hi) in enumerate(ranges)],
                )
            log.info("created stream %s/%s with %d segments", scope, stream, len(ranges))
            return True

    def update_stream(self, scope: str, stream: str, config: StreamConfig) -> None:
        with self._lock:
            self._stream_row(scope, stream)
            with self._db.transaction() as cur:
                cur.execute(
                    "UPDATE streams SET config = ? WHERE scope = ? AND name = ?",
                    (config_to_json(config), scope, stream),
                )

    def list_streams(self, scope: str) -> list[str]:
        self._require_scope(scope)
        return [str(r[0]) for r in self._db.query("SELECT name FROM streams WHERE scope = ? ORDER BY name", (scope,))]

    def get_stream(self, scope: str, stream: str) -> StreamInfo:
        config, sealed, epoch, _, _, created = self._stream_row(scope, stream)
        return StreamInfo(
            scope, stream, config_from_json(config), bool(sealed), epoch, tuple(self._active(scope, stream)), created
        )

    def _seal_segments(self, scope: str, stream: str, numbers: list[int]) -> None:
        """Seal in the store and record each final length (redone by recovery after a crash)."""
        for number in numbers:
            seg = self._segment(scope, stream, number)
            try:
                final = self._store.seal(seg.name)
            except SegmentNotFound:
                final = 0
            with self._db.transaction() as cur:
                cur.execute(
                    "UPDATE segments SET sealed = 1, final_length = ? WHERE scope = ? AND stream = ? AND number = ?",
                    (final, scope, stream, number),
                )

    def seal_stream(self, scope: str, stream: str) -> None:
        with self._lock:
            self._stream_row(scope, stream)
            self._abort_open_transactions(scope, stream)
            active = [s.number for s in self._active(scope, stream)]
            with self._db.transaction() as cur:
                cur.execute("UPDATE streams SET sealed = 1 WHERE scope = ? AND name = ?", (scope, stream))
            self._seal_segments(scope, stream, active)

    def delete_stream(self, scope: str, stream: str) -> None:
        with self._lock:
            self.seal_stream(scope, stream)
            with self._db.transaction() as cur:
                cur.execute("DELETE FROM streams WHERE scope = ? AND name = ?", (scope, stream))
                cur.execute("UPDATE segments SET deleted = 1 WHERE scope = ? AND stream = ?", (scope, stream))
                cur.execute("DELETE FROM retention_cuts WHERE scope = ? AND stream = ?", (scope, stream))
                cur.execute("DELETE FROM txns WHERE scope = ? AND stream = ?", (scope, stream))
            self._purge_deleted(scope, stream, forget=True)

    def _purge_deleted(self, scope: str, stream: str, *, forget: bool) -> None:
        """Delete segments marked deleted from the store; ``forget`` also drops their metadata rows."""
        rows = self._db.query(
            "SELECT number, epoch FROM segments WHERE scope = ? AND stream = ? AND deleted = 1", (scope, stream)
        )
        existing = set(self._store.list_segments(f"{scope}/{stream}/"))
        for number, epoch in rows:
            name = segment_name(scope, stream, int(number), int(epoch))
            for victim in [n for n in existing if n == name or n.startswith(name + "#")]:
                with contextlib.suppress(SegmentNotFound):
                    self._store.delete(victim)
        if forget:
            with self._db.transaction() as cur:
                cur.execute("DELETE FROM segments WHERE scope = ? AND stream = ?", (scope, stream))
                cur.execute("DELETE FROM predecessors WHERE scope = ? AND stream = ?", (scope, stream))

    # -- segments -------------------------------------------------------------------------
    def get_active_segments(self, scope: str, stream: str) -> list[SegmentRange]:
        self._stream_row(scope, stream)
        return self._active(scope, stream)

    def get_successors(self, scope: str, stream: str, segment: str) -> list[SuccessorInfo]:
        self._stream_row(scope, stream)
        number = self._number_of(scope, stream, segment)
        self._segment(scope, stream, number)
        out = []
        for succ in self._successor_numbers(scope, stream, number):
            preds = tuple(self._segment(scope, stream, p).name for p in self._predecessors(scope, stream, succ))
            out.append(SuccessorInfo(self._segment(scope, stream, succ), preds))
        return out

    def scale_stream(
        self, scope: str, stream: str, seal: list[str], new_ranges: list[tuple[float, float]]
    ) -> list[SegmentRange]:
        with self._lock:
            _, sealed, epoch, next_number, _, _ = self._stream_row(scope, stream)
            if sealed:
                raise SegmentSealed(f"stream {scope}/{stream} is sealed; it cannot scale")
            if self._db.query(
                "SELECT 1 FROM txns WHERE scope = ? AND stream = ? AND state IN ('open', 'committing')", (scope, stream)
            ):
                raise InvalidStreamArgument(f"stream {scope}/{stream} has open transactions; scale after they end")
            active = {s.number: s for s in self._active(scope, stream)}
            old = [active.get(self._number_of(scope, stream, name)) for name in seal]
            if not old or any(s is None for s in old):
                raise InvalidStreamArgument(f"scale of {scope}/{stream}: {seal} are not all active segments")
            old_segments = sorted((s for s in old if s is not None), key=lambda s: s.key_low)
            ranges = sorted((float(lo), float(hi)) for lo, hi in new_ranges)
            self._check_ranges(scope, stream, old_segments, ranges)
            new_epoch = epoch + 1
            numbers = list(range(next_number, next_number + len(ranges)))
            new = [
                SegmentRange(segment_name(scope, stream, n, new_epoch), n, new_epoch, lo, hi)
                for n, (lo, hi) in zip(numbers, ranges, strict=True)
            ]
            for seg in new:
                self._store.create_segment(seg.name)
            now = self._clock()
            with self._db.transaction() as cur:
                cur.execute(
                    "UPDATE streams SET epoch = ?, next_number = ? WHERE scope = ? AND name = ?",
                    (new_epoch, next_number + len(ranges), scope, stream),
                )
                cur.executemany(
                    "INSERT INTO segments VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL, 0)",
                    [(scope, stream, s.number, new_epoch, s.key_low, s.key_high, now) for s in new],
                )
                cur.executemany(
                    "UPDATE segments SET sealed = 1 WHERE scope = ? AND stream = ? AND number = ?",
                    [(scope, stream, s.number) for s in old_segments],
                )
                edges = [
                    (scope, stream, n.number, o.number)
                    for n in new
                    for o in old_segments
                    if n.key_low < o.key_high and o.key_low < n.key_high
                ]
                cur.executemany("INSERT INTO predecessors VALUES (?, ?, ?, ?)", edges)
            self._seal_segments(scope, stream, [s.number for s in old_segments])
            log.info(
                "scaled %s/%s to epoch %d: %s -> %s",
                scope,
                stream,
                new_epoch,
                [s.number for s in old_segments],
                [s.number for s in new],
            )
            return new

    @staticmethod
    def _check_ranges(scope: str, stream: str, old: list[SegmentRange], ranges: list[tuple[float, float]]) -> None:
        """New ranges must tile exactly the key space of the sealed segments."""
        covered = [(s.key_low, s.key_high) for s in old]
        merged: list[tuple[float, float]] = []
        for lo, hi in covered:
            if merged and abs(merged[-1][1] - lo) < 1e-12:
                merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        ok = bool(ranges) and all(lo < hi for lo, hi in ranges)
        pos = 0
        for lo, hi in merged:
            if not ok:
                break
            cursor = lo
            while pos < len(ranges) and abs(ranges[pos][0] - cursor) < 1e-12 and ranges[pos][1] <= hi + 1e-12:
                cursor = ranges[pos][1]
                pos += 1
            ok = abs(cursor - hi) < 1e-12
        if not ok or pos != len(ranges):
            raise InvalidStreamArgument(
                f"scale of {scope}/{stream}: new ranges {ranges} do not cover exactly {merged}, "
                "the sealed segments' keys"
            )

    # -- cuts and truncation --------------------------------------------------------------
    def get_head_cut(self, scope: str, stream: str) -> StreamCut:
        head = self._stream_row(scope, stream)[4]
        return StreamCut(scope, stream, tuple(sorted(json.loads(head).items())))

    def get_tail_cut(self, scope: str, stream: str) -> StreamCut:
        with self._lock:
            self._stream_row(scope, stream)
            if self._db.query(
                "SELECT 1 FROM streams WHERE scope = ? AND name = ? AND sealed = 1", (scope, stream)
            ):  # a sealed stream's tail is the end of its last segments
                rows = self._db.query(
                    "SELECT s.number, s.epoch, s.final_length FROM segments s WHERE s.scope = ? AND s.stream = ? "
                    "AND s.deleted = 0 AND NOT EXISTS (SELECT 1 FROM predecessors p WHERE p.scope = s.scope "
                    "AND p.stream = s.stream AND p.pred = s.number)",
                    (scope, stream),
                )
                positions = [(segment_name(scope, stream, int(n), int(e)), int(f or 0)) for n, e, f in rows]
            else:
                positions = [(s.name, self._store.info(s.name).length) for s in self._active(scope, stream)]
            return StreamCut(scope, stream, tuple(sorted(positions)))

    def _validate_cut(self, scope: str, stream: str, cut: StreamCut) -> dict[int, int]:
        if not isinstance(cut, StreamCut) or (cut.scope, cut.stream) != (scope, stream):
            raise InvalidStreamArgument(f"cut {cut!r} is not a cut of stream {scope}/{stream}")
        numbers = {self._number_of(scope, stream, name): int(off) for name, off in cut.positions}
        ranges = []
        for number, offset in numbers.items():
            seg = self._segment(scope, stream, number)
            if offset < 0:
                raise InvalidStreamArgument(f"cut of {scope}/{stream}: negative offset {offset} in {seg.name}")
            ranges.append((seg.key_low, seg.key_high))
        ranges.sort()
        edges = [0.0] + [x for lo_hi in ranges for x in lo_hi] + [1.0]
        if not ranges or any(abs(edges[i] - edges[i + 1]) > 1e-12 for i in range(0, len(edges), 2)):
            raise InvalidStreamArgument(f"cut of {scope}/{stream} does not cover the key space exactly once")
        return numbers

    def _written(self, scope: str, stream: str, numbers: dict[int, int]) -> int:
        """Bytes of the stream before the cut ``numbers`` (cut offsets plus everything before them)."""
        ancestors = self._ancestors(scope, stream, numbers) - set(numbers)
        total = sum(numbers.values())
        for number in ancestors:
            rows = self._db.query(
                "SELECT final_length FROM segments WHERE scope = ? AND stream = ? AND number = ?",
                (scope, stream, number),
            )
            total += int(rows[0][0] or 0) if rows else 0
        return total

    def truncate_stream(self, scope: str, stream: str, cut: StreamCut) -> None:
        with self._lock:
            self._stream_row(scope, stream)
            numbers = self._validate_cut(scope, stream, cut)
            doomed = self._ancestors(scope, stream, numbers) - set(numbers)
            with self._db.transaction() as cur:
                cur.execute(
                    "UPDATE streams SET head = ? WHERE scope = ? AND name = ?",
                    (json.dumps(dict(cut.positions)), scope, stream),
                )
                cur.executemany(
                    "UPDATE segments SET deleted = 1 WHERE scope = ? AND stream = ? AND number = ?",
                    [(scope, stream, n) for n in doomed],
                )
            for name, offset in cut.positions:
                self._store.truncate(name, offset)
            self._purge_deleted(scope, stream, forget=False)
            log.info("truncated %s/%s at %s (%d segments deleted)", scope, stream, cut.positions, len(doomed))
