"""Configuration of a scaled processing job, and what a processing function may return."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any, TypeAlias

from xtremehub.errors import InvalidStreamArgument
from xtremehub.streams.client.manager import StreamManager
from xtremehub.streams.client.reader import EventRead
from xtremehub.streams.controller.model import ScalingPolicy

__all__ = ["Output", "ProcessFn", "ProcessorConfig", "Source", "iter_outputs", "open_manager"]

#: One output: a payload (written with the input event's routing key) or ``(payload, routing_key)``.
Output: TypeAlias = bytes | bytearray | memoryview | tuple[bytes | bytearray | memoryview, str | None]
#: ``func(event) -> outputs``: an iterable of :data:`Output` (or None for no output).
ProcessFn: TypeAlias = Callable[[EventRead], Iterable[Output] | None]
#: Where workers reach the stream store: a server URL (``"tcp://host:9090"``), or a picklable
#: function returning a :class:`StreamManager` (connected to a server: workers are other processes).
Source: TypeAlias = str | Callable[[], StreamManager]


@dataclass(frozen=True, slots=True)
class ProcessorConfig:
    """How a :class:`~xtremehub.streams.processing.StreamProcessor` scales and checkpoints.

    The two parameters an operator sets:

    - ``events_per_second_per_segment``: the input stream's auto-scaling target
      (``ScalingPolicy.by_event_rate``): a segment receiving more splits in
      ``scale_factor`` parts, two neighbours together under half of it merge. With one worker
      per segment this is also the rate each worker must sustain.
    - ``scale_down_delay``: seconds the number of workers the segments ask for must stay
      lower before workers are stopped (scale-up is immediate). A short dip in load then does
      not cost a stop and a restart.

    The rest: ``workers_per_segment`` (0.5: one worker per two segments), bounds
    ``min_workers``/``max_workers``, ``min_segments``, ``scale_factor``, the policy's
    ``scaling_window`` (seconds of traffic a rate is measured over) and ``scaling_cooldown``
    (a new segment's age before it scales again), ``checkpoint_interval`` (seconds between
    checkpoints: outputs become visible once per interval, and a failure redoes at most about
    this much work), ``checkpoint_timeout``, ``txn_lease`` (output transactions),
    ``poll_interval`` (the driver's loop), ``sync_interval`` (readers), ``control_interval``
    (how often a worker looks at its control keys) and ``max_failures`` (worker failures in a
    row, with no checkpoint committing outputs in between, before the job gives up and
    :meth:`StreamProcessor.stop` raises the last one).

    Example:
        >>> ProcessorConfig(events_per_second_per_segment=500, scale_down_delay=30).workers_for(5)
        5
        >>> ProcessorConfig(workers_per_segment=0.5, max_workers=2).workers_for(5)
        2
    """

    events_per_second_per_segment: float = 1000.0
    scale_down_delay: float = 30.0
    workers_per_segment: float = 1.0
    min_workers: int = 1
    max_workers: int = 16
    min_segments: int = 1
    scale_factor: int = 2
    scaling_window: float = 5.0
    scaling_cooldown: float = 10.0
    checkpoint_interval: float = 1.0
    checkpoint_timeout: float = 30.0
    txn_lease: float = 120.0
    poll_interval: float = 0.1
    sync_interval: float = 0.5
    control_interval: float = 0.25
    max_failures: int = 10

    def __post_init__(self) -> None:
        positive = (
            "events_per_second_per_segment",
            "workers_per_segment",
            "scaling_window",
            "checkpoint_interval",
            "checkpoint_timeout",
            "txn_lease",
            "poll_interval",
            "sync_interval",
            "control_interval",
        )
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InvalidStreamArgument(f"processor config {name}: must be a number > 0, got {value!r}")
        for name in ("scale_down_delay", "scaling_cooldown"):
            if not getattr(self, name) >= 0:
                raise InvalidStreamArgument(f"processor config {name}: must be >= 0, got {getattr(self, name)!r}")
        if not 1 <= self.min_workers <= self.max_workers:
            raise InvalidStreamArgument(
                f"processor config: need 1 <= min_workers <= max_workers, got {self.min_workers}, {self.max_workers}"
            )
        if self.max_failures < 0:
            raise InvalidStreamArgument(f"processor config max_failures: must be >= 0, got {self.max_failures}")
        if self.txn_lease <= 2 * (self.checkpoint_interval + self.checkpoint_timeout):
            raise InvalidStreamArgument(
                f"processor config txn_lease: {self.txn_lease} s must exceed twice checkpoint_interval + "
                f"checkpoint_timeout ({self.checkpoint_interval} + {self.checkpoint_timeout} s): a transaction "
                "lives from its first event until the checkpoint after it commits"
            )
        self.scaling_policy()  # validates min_segments, scale_factor

    @classmethod
    def with_options(cls, base: ProcessorConfig | None, **options: Any) -> ProcessorConfig:
        """``base`` (or the defaults) with some fields replaced; an unknown name is ``InvalidStreamArgument``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InvalidStreamArgument(f"unknown processor options {unknown}; known: {sorted(known)}")
        values = {f.name: getattr(base, f.name) for f in fields(cls)} if base is not None else {}
        return cls(**{**values, **options})

    def scaling_policy(self) -> ScalingPolicy:
        """The auto-scaling policy the job puts on its input stream."""
        return ScalingPolicy.by_event_rate(
            self.events_per_second_per_segment,
            scale_factor=self.scale_factor,
            min_segments=self.min_segments,
            cooldown=self.scaling_cooldown,
            window=self.scaling_window,
        )

    def workers_for(self, segments: int) -> int:
        """Workers wanted for ``segments`` active segments."""
        wanted = math.ceil(segments * self.workers_per_segment - 1e-9)
        return max(self.min_workers, min(self.max_workers, wanted))


def iter_outputs(result: Iterable[Output] | None, routing_key: str | None) -> Iterator[tuple[bytes, str | None]]:
    """Normalise what a processing function returned to ``(payload, routing_key)`` pairs.

    >>> list(iter_outputs([b"a", (b"b", "k2")], "k1"))
    [(b'a', 'k1'), (b'b', 'k2')]
    >>> list(iter_outputs(None, "k1"))
    []
    """
    if result is None:
        return
    if isinstance(result, bytes | bytearray | memoryview):
        raise InvalidStreamArgument(
            "a processing function returns an iterable of outputs, not one payload: return [payload]"
        )
    for item in result:
        if isinstance(item, bytes | bytearray | memoryview):
            yield bytes(item), routing_key
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], bytes | bytearray | memoryview):
            if item[1] is not None and not isinstance(item[1], str):
                raise InvalidStreamArgument(f"output routing key must be a str or None, not {item[1]!r:.80}")
            yield bytes(item[0]), item[1]
        else:
            raise InvalidStreamArgument(
                f"a processing function's output must be bytes or (bytes, routing_key), not {item!r:.80}"
            )


def open_manager(source: Source) -> StreamManager:
    """A stream manager for ``source`` (a URL or a factory)."""
    if isinstance(source, str):
        return StreamManager(source)
    if callable(source):
        manager = source()
        if not isinstance(manager, StreamManager):
            raise InvalidStreamArgument(f"the manager factory returned {manager!r:.80}, not a StreamManager")
        return manager
    raise InvalidStreamArgument(f"a processor source is a tcp:// URL or a StreamManager factory, not {source!r:.80}")
