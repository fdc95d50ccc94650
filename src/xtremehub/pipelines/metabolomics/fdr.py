"""False discovery rates with decoy adducts, as METASPACE estimates them (``sm.engine.annotation.fdr``).

Per target adduct:

* analysis version 1: ``decoy_sample_size`` rankings, ranking i pairing every target
  with its i-th decoy; in each, FDR at a score = decoys / targets scoring at least as
  high; the median over the rankings, then binned (monotonic) to 5, 10, 20 and 50 %.
* analysis version 3: one ranking against all decoys, decoy count divided by
  ``decoy_sample_size``, one target and one decoy added (rule of succession), made
  monotonic (a lower score never has a lower FDR).

Only ions with MSM > 0 take part, as in METASPACE.

Example:
    >>> score_to_fdr_map(np.array([0.9, 0.8, 0.5]), np.array([0.7]), 1, False, False).tolist()
    [0.0, 0.0, 0.5, 0.3333333333333333]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from xtremehub.pipelines.metabolomics.decoys import Ions

__all__ = ["FDR_LEVELS", "digitize_fdr", "estimate_fdr", "score_to_fdr_map"]

#: FDR bins of analysis version 1.
FDR_LEVELS = (0.05, 0.1, 0.2, 0.5)

Array = np.ndarray[Any, Any]


def score_to_fdr_map(
    target_scores: Array, decoy_scores: Array, decoy_ratio: float, rule_of_succession: bool, monotonic: bool
) -> pd.Series:
    """FDR per distinct score (index: scores, descending)."""
    target_hits = pd.Series(target_scores).value_counts().rename("target")
    decoy_hits = pd.Series(decoy_scores).value_counts().rename("decoy")
    counts = pd.concat([target_hits, decoy_hits], axis=1).fillna(0).sort_index(ascending=False)
    targets = counts.target.cumsum()
    decoys = counts.decoy.cumsum()
    if rule_of_succession:
        targets, decoys = targets + 1, decoys + 1
    fdrs = decoys / decoy_ratio / targets
    fdrs[targets == 0] = 1
    if monotonic:
        fdrs = pd.Series(np.minimum.accumulate(fdrs.to_numpy()[::-1])[::-1], index=fdrs.index)
    return fdrs


def _ranking(targets: pd.Series, decoys: pd.Series, ratio: float, succession: bool, monotonic: bool) -> pd.Series:
    fdr_map = score_to_fdr_map(targets.to_numpy(), decoys.to_numpy(), ratio, succession, monotonic)
    return pd.Series(fdr_map.loc[targets.to_numpy()].to_numpy(), index=targets.index)


def digitize_fdr(df: pd.DataFrame) -> pd.DataFrame:
    """Bin ``fdr`` to :data:`FDR_LEVELS` (else 1.0), monotonic in ``msm`` (version 1)."""
    df = df.sort_values(by="msm", ascending=False)
    levels = [df[df.fdr < thr].msm.min() for thr in FDR_LEVELS]
    binned = np.ones(len(df))
    for msm_thr, thr in zip(levels, FDR_LEVELS, strict=True):
        mask = np.isclose(binned, 1.0) & np.greater_equal(df.msm.to_numpy(), msm_thr)
        binned[mask] = thr
    return df.assign(fdr=binned)


def estimate_fdr(scores: pd.DataFrame, ions: Ions, analysis_version: int = 1) -> pd.DataFrame:
    """FDR of every target ion in ``scores`` (columns formula, modifier, msm; MSM > 0 only).

    Returns the target rows of ``scores`` with an ``fdr`` column, sorted by MSM descending.
    """
    pairs = ions.pairs.set_index("tm")
    n = ions.decoy_sample_size
    results = []
    for tm in ions.target_modifiers:
        target = scores[scores.modifier == tm]
        if tm in pairs.index:
            decoy_pairs = pairs.loc[[tm], ["formula", "dm"]].rename(columns={"dm": "modifier"}).reset_index(drop=True)
        else:
            decoy_pairs = pd.DataFrame(columns=["formula", "modifier"])
        if analysis_version >= 3:
            decoy = pd.merge(scores, decoy_pairs, on=["formula", "modifier"])
            results.append(target.assign(fdr=_ranking(target.msm, decoy.msm, n, True, True)))
        else:
            rankings = []
            for i in range(n):
                decoy = pd.merge(scores, decoy_pairs[i::n], on=["formula", "modifier"])
                rankings.append(_ranking(target.msm, decoy.msm, 1, False, False))
            if rankings and len(target):
                median = pd.concat(rankings, axis=1).median(axis=1).rename("fdr")
                results.append(digitize_fdr(target.join(median)))
            else:
                results.append(target.assign(fdr=pd.Series(dtype=float)))
    columns = [*scores.columns, "fdr"]
    out = pd.concat([r for r in results if len(r)], ignore_index=False) if any(len(r) for r in results) else None
    if out is None:
        return pd.DataFrame({c: pd.Series(dtype=scores[c].dtype if c in scores else float) for c in columns})
    return out.sort_values("msm", ascending=False, kind="stable")
