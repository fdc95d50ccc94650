"""The in-process controller: durable metadata in SQLite, segments in a segment store.

Example:
    >>> import tempfile, pathlib
    >>> from xtremehub.streams.controller import Controller, ScalingPolicy, StreamConfig
    >>> from xtremehub.streams.segmentstore import SegmentStore, SegmentStoreConfig
    >>> path = pathlib.Path(tempfile.mkdtemp())
    >>> store = SegmentStore(SegmentStoreConfig(data_dir=path / "segments"))
    >>> ctl = Controller(store, path / "controller.db")
    >>> ctl.create_scope("demo"), ctl.create_stream("demo", "events", StreamConfig(ScalingPolicy.fixed(2)))
    (True, True)
    >>> [s.name for s in ctl.get_active_segments("demo", "events")]
    ['demo/events/0.#epoch.0', 'demo/events/1.#epoch.0']
    >>> ctl.close(); store.close()
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from xtremehub.errors import StreamError
from xtremehub.streams.controller._checkpoints import CheckpointOps
from xtremehub.streams.controller._metadata import Metadata, config_from_json, segment_name
from xtremehub.streams.controller._readergroups import ReaderGroupOps
from xtremehub.streams.controller._streams import StreamOps, even_ranges
from xtremehub.streams.controller._txns import TxnOps
from xtremehub.streams.controller.contract import ControllerContract
from xtremehub.streams.controller.model import ScalingPolicy, StreamCut
from xtremehub.streams.segmentstore.contract import SegmentStoreContract

__all__ = ["Controller"]

log = logging.getLogger(__name__)

#: Two neighbours merge when their summed rate is below this fraction of the target.
MERGE_FRACTION = 0.5
#: Shortest span rates are measured over: writers report traffic every 0.5 s, so a shorter window
#: would often hold no report at all and make a busy segment look cold.
MIN_TRAFFIC_SPAN = 1.0


class Controller(StreamOps, TxnOps, ReaderGroupOps, CheckpointOps, ControllerContract):
    """Controller operations on durable metadata at ``db_path``, segments in ``store``.

    Thread-safe. ``clock`` gives wall-clock seconds (tests may pass their own).
    """

    def __init__(
        self, store: SegmentStoreContract, db_path: str | Path, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._db = Metadata(Path(db_path))
        self._lock = threading.RLock()
        self._clock = clock
        self._traffic: dict[str, deque[tuple[float, int, int]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        with self._lock:
            self._recover()

    # -- recovery -------------------------------------------------------------------------
    def _recover(self) -> None:
        """Bring the segment store in line with the durable metadata after a crash."""
        existing = set(self._store.list_segments())
        rows = self._db.query("SELECT scope, stream, number, epoch, sealed, final_length, deleted FROM segments")
        for scope, stream, number, epoch, sealed, final, deleted in rows:
            name = segment_name(scope, stream, number, epoch)
            if deleted:
                continue
            if name not in existing:
                log.warning("recovery: segment %s missing from the store; recreating it", name)
                self._store.create_segment(name)
            if sealed and final is None:
                self._seal_segments(str(scope), str(stream), [int(number)])
        for scope, stream in {(str(r[0]), str(r[1])) for r in rows if r[6]}:
            self._purge_deleted(scope, stream, forget=False)
        streams = {
            (str(s), str(n)): int(nx) for s, n, nx in self._db.query("SELECT scope, name, next_number FROM streams")
        }
        for name in existing:
            parts = name.split("/")
            if len(parts) != 3 or "#" in parts[2].split(".#epoch.", 1)[-1] or ".#epoch." not in parts[2]:
                continue
            try:
                number = int(parts[2].split(".#epoch.", 1)[0])
            except ValueError:
                continue
            if (parts[0], parts[1]) in streams and number >= streams[(parts[0], parts[1])]:
                log.warning("recovery: deleting segment %s created by a scale that did not commit", name)
                self._store.delete(name)
        self._recover_transactions()

    # -- traffic and auto-scaling ---------------------------------------------------------
    def report_traffic(self, scope: str, stream: str, traffic: dict[str, tuple[int, int]]) -> None:
        now = self._clock()
        with self._lock:
            for segment, (events, nbytes) in traffic.items():
                self._traffic.setdefault(segment, deque(maxlen=4096)).append((now, int(events), int(nbytes)))

    def _rate(self, segment: str, policy: ScalingPolicy, now: float) -> float:
        samples = self._traffic.get(segment, ())
        index = 1 if policy.kind == "event_rate" else 2
        span = max(policy.window, MIN_TRAFFIC_SPAN)
        return sum(s[index] for s in samples if s[0] >= now - span) / span

    def _auto_scale(self, scope: str, stream: str, policy: ScalingPolicy, now: float) -> None:
        if self._db.query(
            "SELECT 1 FROM txns WHERE scope = ? AND stream = ? AND state IN ('open', 'committing')", (scope, stream)
        ):
            return  # transaction segments are tied to the current segments: scale once they end
        created = {
            int(n): float(c)
            for n, c in self._db.query(
                "SELECT number, created FROM segments WHERE scope = ? AND stream = ? AND sealed = 0 AND deleted = 0",
                (scope, stream),
            )
        }
        active = self._active(scope, stream)
        settled = max(policy.window, policy.cooldown, MIN_TRAFFIC_SPAN)
        eligible = {s.number: self._rate(s.name, policy, now) for s in active if now - created[s.number] >= settled}
        hot = [s for s in active if eligible.get(s.number, 0.0) > policy.target_rate]
        if hot:
            seg = max(hot, key=lambda s: eligible[s.number])
            log.info("auto-scale %s/%s: split %s (rate %.1f)", scope, stream, seg.name, eligible[seg.number])
            self.scale_stream(scope, stream, [seg.name], even_ranges(seg.key_low, seg.key_high, policy.scale_factor))
            return
        if len(active) <= policy.min_segments:
            return
        for left, right in itertools.pairwise(active):
            both = left.number in eligible and right.number in eligible and abs(left.key_high - right.key_low) < 1e-12
            if both and eligible[left.number] + eligible[right.number] < policy.target_rate * MERGE_FRACTION:
                log.info("auto-scale %s/%s: merge %s and %s", scope, stream, left.name, right.name)
                self.scale_stream(scope, stream, [left.name, right.name], [(left.key_low, right.key_high)])
                return

    # -- retention ------------------------------------------------------------------------
    def _retain(self, scope: str, stream: str, now: float) -> None:
        config = config_from_json(self._stream_row(scope, stream)[0]).retention
        last = self._db.query("SELECT MAX(ts) FROM retention_cuts WHERE scope = ? AND stream = ?", (scope, stream))[0][
            0
        ]
        if last is None or now - float(last) >= config.cut_interval:
            tail = self.get_tail_cut(scope, stream)
            written = self._written(scope, stream, self._validate_cut(scope, stream, tail))
            with self._db.transaction() as cur:
                cur.execute(
                    "INSERT INTO retention_cuts VALUES (?, ?, ?, ?, ?)", (scope, stream, now, tail.to_json(), written)
                )
        cuts = self._db.query(
            "SELECT ts, cut, written FROM retention_cuts WHERE scope = ? AND stream = ? ORDER BY ts", (scope, stream)
        )
        current = int(cuts[-1][2])
        if config.kind == "time":
            chosen = [c for c in cuts if float(c[0]) <= now - config.seconds]
        else:
            chosen = [c for c in cuts if current - int(c[2]) >= config.bytes]
        if not chosen:
            return
        ts, text, written = chosen[-1]
        head = self.get_head_cut(scope, stream)
        if int(written) > self._written(scope, stream, self._validate_cut(scope, stream, head)):
            log.info("retention: truncating %s/%s at the cut of %.0f", scope, stream, ts)
            self.truncate_stream(scope, stream, StreamCut.from_json(str(text)))
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM retention_cuts WHERE scope = ? AND stream = ? AND ts <= ?", (scope, stream, ts))

    # -- background duties ----------------------------------------------------------------
    def run_maintenance(self) -> None:
        with self._lock:
            now = self._clock()
            self._expire_transactions()
            self._expire_readers()
            self._expire_checkpoints()
            for scope, stream, config, sealed in self._db.query("SELECT scope, name, config, sealed FROM streams"):
                policies = config_from_json(str(config))
                try:
                    if policies.scaling.kind != "fixed" and not sealed:
                        self._auto_scale(str(scope), str(stream), policies.scaling, now)
                    if policies.retention.kind != "none":
                        self._retain(str(scope), str(stream), now)
                except StreamError as exc:  # one stream's trouble must not stop the others'
                    log.warning("maintenance of %s/%s failed: %s", scope, stream, exc)
            horizon = now - 600.0
            for name in [n for n, q in self._traffic.items() if not q or q[-1][0] < horizon]:
                del self._traffic[name]

    def start_background(self, interval: float = 1.0) -> None:
        """Run :meth:`run_maintenance` every ``interval`` seconds in a daemon thread until :meth:`close`."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.run_maintenance()
                except Exception:  # keep the loop alive; the error is logged with its traceback
                    log.exception("controller maintenance failed")

        self._thread = threading.Thread(target=loop, name="xhub-controller-maintenance", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the background thread and close the metadata database (not the segment store)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._db.close()
