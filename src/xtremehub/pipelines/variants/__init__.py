"""Variant calling from FASTQ.gz read batches: QC, parallel mapping (mappy), per-region calling (bcftools).

* :func:`call_variants`: the distributed pipeline on any executor; :func:`call_sequential`: the
  same tools in one process (the identity baseline).
* :class:`VariantsConfig`: batches, region size, mapping and calling parameters.
* :class:`ReadQC`: FastQC-style statistics with an exact merge; :func:`qc_png` draws them.
* :func:`simulate_run`: a seeded read simulator with planted SNPs and indels (the truth set);
  :func:`compare_calls` scores calls against it.

Example:
    >>> from xtremehub.pipelines.variants import VariantsConfig
    >>> VariantsConfig(read_batches=3).read_batches
    3
"""

from __future__ import annotations

from xtremehub.pipelines.variants.config import VariantsConfig
from xtremehub.pipelines.variants.driver import VariantsReport, call_sequential, call_variants
from xtremehub.pipelines.variants.qc import ReadQC, qc_png
from xtremehub.pipelines.variants.simulate import (
    PlantedVariant,
    SimConfig,
    SimulatedRun,
    random_reference,
    simulate_run,
)
from xtremehub.pipelines.variants.truth import TruthScore, compare_calls, vcf_records

__all__ = [
    "PlantedVariant",
    "ReadQC",
    "SimConfig",
    "SimulatedRun",
    "TruthScore",
    "VariantsConfig",
    "VariantsReport",
    "call_sequential",
    "call_variants",
    "compare_calls",
    "qc_png",
    "random_reference",
    "simulate_run",
    "vcf_records",
]
