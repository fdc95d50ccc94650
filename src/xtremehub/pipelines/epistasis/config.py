"""The frozen settings of an MDR run.

Example:
    >>> from xtremehub.pipelines.epistasis import MDRConfig
    >>> MDRConfig(mode="compat").cv_sets
    5
    >>> MDRConfig(cv_sets=1)
    Traceback (most recent call last):
    ...
    xtremehub.errors.ConfigError: cv_sets must be >= 2, not 1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xtremehub.errors import ConfigError

__all__ = ["MDRConfig", "Mode"]

#: ``"default"``: the corrected MDR definitions; ``"compat"``: the seed's Lithops results, quirks included.
Mode = Literal["default", "compat"]


@dataclass(frozen=True)
class MDRConfig:
    """How pairs are evaluated and written.

    Attributes:
        mode: ``"default"`` (corrected MDR, agrees with scikit-mdr) or ``"compat"`` (reproduces the
            seed's Lithops NumPy logic exactly; see ``docs/epistasis.md``).
        cv_sets: folds of the cross-validation (contiguous, unshuffled patient blocks).
        call_threshold: a genotype probability above this is a hard call (``filter_imputation``).
        prob_tolerance: each patient's three probabilities must sum to 1 within this (or all be 0:
            an explicitly missing call).
        block_snps: SNPs per vectorised block (0: chosen from the patient count, see :meth:`block_for`).
        text_tolerance: write a pair to the seed-style text output only when the sum of its fold
            values is at most this (the seed's ``prediction_power_tol``); ``None`` writes every pair.
        top_k: pairs in the top-K summary.
    """

    mode: Mode = "default"
    cv_sets: int = 5
    call_threshold: float = 0.9
    prob_tolerance: float = 0.02
    block_snps: int = 0
    text_tolerance: float | None = None
    top_k: int = 20

    def __post_init__(self) -> None:
        if self.mode not in ("default", "compat"):
            raise ConfigError(f"mode must be 'default' or 'compat', not {self.mode!r}")
        if self.cv_sets < 2:
            raise ConfigError(f"cv_sets must be >= 2, not {self.cv_sets}")
        if not 0.5 <= self.call_threshold < 1:
            raise ConfigError(f"call_threshold must be in [0.5, 1), not {self.call_threshold}")
        if not 0 <= self.prob_tolerance < 0.5:
            raise ConfigError(f"prob_tolerance must be in [0, 0.5), not {self.prob_tolerance}")
        if self.block_snps < 0 or self.top_k < 1:
            raise ConfigError(f"block_snps must be >= 0 and top_k >= 1, not {self.block_snps}, {self.top_k}")

    def block_for(self, n_patients: int) -> int:
        """SNPs per vectorised block for ``n_patients``: indicator rows (3 float32 per SNP and patient)
        of ~48 MiB, and at most 256 so a block pair's cell tables (16 cells x 2 classes x folds per
        pair) stay under ~100 MiB.

        >>> MDRConfig().block_for(100), MDRConfig().block_for(22_800), MDRConfig(block_snps=64).block_for(10)
        (256, 176, 64)
        """
        if self.block_snps:
            return self.block_snps
        return max(16, min(256, (48 << 20) // (12 * max(n_patients, 1)) // 16 * 16))
