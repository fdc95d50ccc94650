"""Target and decoy ions, chosen exactly as METASPACE does (``sm.engine.annotation.fdr.FDR``).

For every formula and target adduct, ``decoy_sample_size`` decoy adducts are drawn from
METASPACE's 80-element list (:data:`DECOY_ADDUCTS`) minus the target adducts: NumPy's
legacy generator seeded with 42 once, then one shuffle of the candidates per (formula,
target adduct) in analysis version 1, per formula in version 3. Ions (formula,
modifier) are then deduplicated; ions that cannot exist (negative element counts) are
dropped.

Example:
    >>> ions = make_ions(["C2H6O", "H2O"], ["+H"], decoy_sample_size=2)
    >>> ions.pairs.to_dict("records")[:2]
    [{'formula': 'C2H6O', 'tm': '+H', 'dm': '+Se'}, {'formula': 'C2H6O', 'tm': '+H', 'dm': '+He'}]
    >>> ions.table[["formula", "modifier", "ion_formula", "target"]].head(3).to_dict("records")[0]
    {'formula': 'C2H6O', 'modifier': '+H', 'ion_formula': 'C2H7O', 'target': True}
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from xtremehub.errors import ConfigError
from xtremehub.pipelines.metabolomics.formulas import FormulaError, format_modifiers, generate_ion_formula

__all__ = ["DECOY_ADDUCTS", "RANDOM_SEED", "Ions", "make_ions"]

#: METASPACE's decoy adducts (``sm.engine.annotation.fdr.DECOY_ADDUCTS``), in its order.
DECOY_ADDUCTS: tuple[str, ...] = (
    "+He",
    "+Li",
    "+Be",
    "+B",
    "+C",
    "+N",
    "+O",
    "+F",
    "+Ne",
    "+Mg",
    "+Al",
    "+Si",
    "+P",
    "+S",
    "+Cl",
    "+Ar",
    "+Ca",
    "+Sc",
    "+Ti",
    "+V",
    "+Cr",
    "+Mn",
    "+Fe",
    "+Co",
    "+Ni",
    "+Cu",
    "+Zn",
    "+Ga",
    "+Ge",
    "+As",
    "+Se",
    "+Br",
    "+Kr",
    "+Rb",
    "+Sr",
    "+Y",
    "+Zr",
    "+Nb",
    "+Mo",
    "+Ru",
    "+Rh",
    "+Pd",
    "+Ag",
    "+Cd",
    "+In",
    "+Sn",
    "+Sb",
    "+Te",
    "+I",
    "+Xe",
    "+Cs",
    "+Ba",
    "+La",
    "+Ce",
    "+Pr",
    "+Nd",
    "+Sm",
    "+Eu",
    "+Gd",
    "+Tb",
    "+Dy",
    "+Ho",
    "+Ir",
    "+Th",
    "+Pt",
    "+Os",
    "+Yb",
    "+Lu",
    "+Bi",
    "+Pb",
    "+Re",
    "+Tl",
    "+Tm",
    "+U",
    "+W",
    "+Au",
    "+Er",
    "+Hf",
    "+Hg",
    "+Ta",
)
#: METASPACE's fixed seed for the decoy draw.
RANDOM_SEED = 42


@dataclass(frozen=True)
class Ions:
    """``pairs``: one row per (formula, target modifier ``tm``, decoy modifier ``dm``), in
    generation order (version 1 pairs the i-th decoy of every target with ranking i);
    ``table``: the unique ions (formula, modifier, ion_formula, target)."""

    pairs: pd.DataFrame
    table: pd.DataFrame
    target_modifiers: tuple[str, ...]
    decoy_sample_size: int


def _generate(
    formulas: Sequence[str],
    modifiers: Sequence[tuple[str, str]],
    candidates: list[str],
    size: int,
    analysis_version: int,
) -> Iterator[tuple[str, str, str]]:
    rng = np.random.RandomState(RANDOM_SEED)  # same stream as np.random.seed(42) + np.random.shuffle

    def choose() -> list[str]:
        copy = list(candidates)
        rng.shuffle(copy)
        return copy[:size]

    for formula in formulas:
        shared = choose() if analysis_version >= 3 else None
        for target_modifier, decoy_prefix in modifiers:
            for decoy in shared if shared is not None else choose():
                yield formula, target_modifier, decoy_prefix + decoy


def make_ions(
    formulas: Sequence[str],
    target_adducts: Sequence[str],
    *,
    decoy_sample_size: int = 20,
    analysis_version: int = 1,
    decoy_adducts: Sequence[str] = DECOY_ADDUCTS,
) -> Ions:
    """Targets and decoys of ``formulas`` for ``target_adducts`` (see the module docstring)."""
    if not target_adducts:
        raise ConfigError("give at least one target adduct")
    if decoy_sample_size < 1:
        raise ConfigError(f"decoy_sample_size must be >= 1, not {decoy_sample_size}")
    candidates = [a for a in decoy_adducts if a not in target_adducts]
    size = min(decoy_sample_size, len(candidates))
    # chemical modifications and neutral losses are not supported: the prefix is empty
    modifiers = [(format_modifiers(a), format_modifiers()) for a in target_adducts]
    pairs = pd.DataFrame(
        list(_generate(formulas, modifiers, candidates, size, analysis_version)), columns=["formula", "tm", "dm"]
    )
    targets = pairs[["formula", "tm"]].drop_duplicates().to_numpy().tolist()
    decoys = pairs[["formula", "dm"]].drop_duplicates().to_numpy().tolist()
    target_set = {m for m, _ in modifiers}
    rows = []
    for formula, modifier in targets + decoys:
        try:
            ion_formula = generate_ion_formula(formula, modifier)
        except FormulaError:
            continue
        rows.append((formula, modifier, ion_formula, modifier in target_set))
    table = pd.DataFrame(rows, columns=["formula", "modifier", "ion_formula", "target"])
    return Ions(pairs, table, tuple(m for m, _ in modifiers), size)
