"""METASPACE-style metabolite annotation of imaging mass spectrometry (see docs/metabolomics.md).

Example:
    >>> from xtremehub.pipelines.metabolomics import AnnotationConfig, DECOY_ADDUCTS
    >>> len(DECOY_ADDUCTS), AnnotationConfig().adducts
    (80, ('+H', '+Na', '+K'))
"""

from __future__ import annotations

from xtremehub.pipelines.metabolomics.annotate import Annotation, AnnotationConfig, annotate
from xtremehub.pipelines.metabolomics.database import MolecularDatabase, load_database
from xtremehub.pipelines.metabolomics.decoys import DECOY_ADDUCTS, Ions, make_ions
from xtremehub.pipelines.metabolomics.fdr import estimate_fdr, score_to_fdr_map
from xtremehub.pipelines.metabolomics.formulas import FormulaError, generate_ion_formula, parse_formula
from xtremehub.pipelines.metabolomics.isotopes import IsotopeSettings, centroids, centroids_table
from xtremehub.pipelines.metabolomics.metrics import chaos_metric, spatial_metric, spectral_metric

__all__ = [
    "DECOY_ADDUCTS",
    "Annotation",
    "AnnotationConfig",
    "FormulaError",
    "Ions",
    "IsotopeSettings",
    "MolecularDatabase",
    "annotate",
    "centroids",
    "centroids_table",
    "chaos_metric",
    "estimate_fdr",
    "generate_ion_formula",
    "load_database",
    "make_ions",
    "parse_formula",
    "score_to_fdr_map",
    "spatial_metric",
    "spectral_metric",
]
