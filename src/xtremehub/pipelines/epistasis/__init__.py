"""MDR epistasis: every SNP pair tested for an interaction that predicts disease.

The HPC data connector of the genomics use case, with the seed application's four-part API:

* loader: :func:`read_labels`, :func:`convert_labels`, :func:`read_sample`, :func:`convert_samples`
* partitioner: :func:`get_mpicomm`, :func:`get_comb_files`, :func:`make_distribution`
* learner: :func:`filter_imputation`, :func:`transform_patients`, :func:`apply_mdr`,
  :func:`get_risk_array`, :func:`get_error`
* storer: :func:`save_output`

Example:
    >>> import numpy as np
    >>> from xtremehub.pipelines.epistasis import Cohort, MDRConfig, apply_mdr
    >>> cohort = Cohort.build(np.array([0, 1] * 50, dtype=np.int8), MDRConfig())
    >>> g = np.random.default_rng(0).integers(0, 3, size=(4, 100)).astype(np.int8)
    >>> len(apply_mdr(g, g, cohort, triangle=True))  # 4 SNPs: 6 unordered pairs
    6
"""

from __future__ import annotations

from xtremehub.pipelines.epistasis.config import MDRConfig, Mode
from xtremehub.pipelines.epistasis.learner import (
    Cohort,
    MDRResult,
    apply_mdr,
    count_cells,
    filter_imputation,
    get_error,
    get_risk_array,
    transform_patients,
)
from xtremehub.pipelines.epistasis.loader import (
    GenotypeBlock,
    convert_labels,
    convert_samples,
    read_labels,
    read_sample,
)

__all__ = [
    "Cohort",
    "GenotypeBlock",
    "MDRConfig",
    "MDRResult",
    "Mode",
    "apply_mdr",
    "convert_labels",
    "convert_samples",
    "count_cells",
    "filter_imputation",
    "get_error",
    "get_risk_array",
    "read_labels",
    "read_sample",
    "transform_patients",
]
