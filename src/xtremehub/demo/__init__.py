"""The main job (``xhub demo``/``make demo``): XtremeHub end to end on the embedded defaults.

It makes a reproducible sample dataset in the data home (once), then runs a
partitioned ``map_reduce`` over it with the local executor and checks the
answer against what the generator recorded.
"""

from __future__ import annotations

from xtremehub.demo.job import DemoReport, run_demo
from xtremehub.demo.sample_data import SampleDataset, ensure_sample_dataset

__all__ = ["DemoReport", "SampleDataset", "ensure_sample_dataset", "run_demo"]
