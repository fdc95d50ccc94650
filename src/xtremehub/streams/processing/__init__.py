"""Processing that scales with the stream: workers follow the input's segments, exactly once.

:class:`StreamProcessor` runs ``func`` over every event of an input stream and writes its
outputs to an output stream, with one worker per active input segment (started and retired as
auto-scaling splits and merges segments) on any executor backend, and exactly-once results:
outputs are written in transactions committed at reader-group checkpoints. See the
"Scaled processing" section of ``docs/streams.md``.
"""

from __future__ import annotations

from xtremehub.streams.processing.config import Output, ProcessFn, ProcessorConfig, Source, iter_outputs
from xtremehub.streams.processing.driver import ProcessorStatus, Sample, StreamProcessor
from xtremehub.streams.processing.worker import WorkerSpec, WorkerStats, run_worker

__all__ = [
    "Output",
    "ProcessFn",
    "ProcessorConfig",
    "ProcessorStatus",
    "Sample",
    "Source",
    "StreamProcessor",
    "WorkerSpec",
    "WorkerStats",
    "iter_outputs",
    "run_worker",
]
