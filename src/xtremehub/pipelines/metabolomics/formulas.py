"""Molecular formulas and adducts, parsed and combined as METASPACE's ``formula_parser`` does.

A formula is element symbols with optional counts (``C6H12O6``); ``.`` and ``=`` are
ignored as METASPACE does. An adduct is ``+``/``-`` followed by a formula (``+H``,
``-H2O+Na``) or one of the charge-only markers ``[M]+`` and ``[M]-``. Ion formulas are
written in METASPACE's CHNOPS order (C, H, N, O, P, S, then the rest alphabetically).

Example:
    >>> parse_formula("C6H12O6")
    {'C': 6, 'H': 12, 'O': 6}
    >>> generate_ion_formula("H2O", "+H", "-O")
    'H3'
    >>> generate_ion_formula("C2H6O", "[M]+")
    'C2H6O'
    >>> check_adduct("+Xy")
    Traceback (most recent call last):
    ...
    xtremehub.pipelines.metabolomics.formulas.FormulaError: unknown element 'Xy' in adduct '+Xy'
"""

from __future__ import annotations

import re
from collections import Counter

from xtremehub.errors import ConfigError

__all__ = [
    "CHARGE_ONLY_ADDUCTS",
    "ELEMENTS",
    "FormulaError",
    "check_adduct",
    "format_modifiers",
    "generate_ion_formula",
    "parse_formula",
]

#: Every element the isotope-pattern library (cpyMSpec) knows, by atomic number.
ELEMENTS: frozenset[str] = frozenset(
    [
        "H",
        "He",
        "Li",
        "Be",
        "B",
        "C",
        "N",
        "O",
        "F",
        "Ne",
        "Na",
        "Mg",
        "Al",
        "Si",
        "P",
        "S",
        "Cl",
        "Ar",
        "K",
        "Ca",
        "Sc",
        "Ti",
        "V",
        "Cr",
        "Mn",
        "Fe",
        "Co",
        "Ni",
        "Cu",
        "Zn",
        "Ga",
        "Ge",
        "As",
        "Se",
        "Br",
        "Kr",
        "Rb",
        "Sr",
        "Y",
        "Zr",
        "Nb",
        "Mo",
        "Tc",
        "Ru",
        "Rh",
        "Pd",
        "Ag",
        "Cd",
        "In",
        "Sn",
        "Sb",
        "Te",
        "I",
        "Xe",
        "Cs",
        "Ba",
        "La",
        "Ce",
        "Pr",
        "Nd",
        "Pm",
        "Sm",
        "Eu",
        "Gd",
        "Tb",
        "Dy",
        "Ho",
        "Er",
        "Tm",
        "Yb",
        "Lu",
        "Hf",
        "Ta",
        "W",
        "Re",
        "Os",
        "Ir",
        "Pt",
        "Au",
        "Hg",
        "Tl",
        "Pb",
        "Bi",
        "Po",
        "At",
        "Rn",
        "Fr",
        "Ra",
        "Ac",
        "Th",
        "Pa",
        "U",
        "Np",
        "Pu",
        "Am",
        "Cm",
        "Bk",
        "Cf",
        "Es",
        "Fm",
        "Md",
        "No",
        "Lr",
    ]
)
#: Adducts that only set the charge ("the molecule itself, charged").
CHARGE_ONLY_ADDUCTS = ("[M]+", "[M]-")

_CLEAN = re.compile(r"[.=]")
_PART = re.compile(r"([A-Z][a-z]*)([0-9]*)")
_WHOLE = re.compile(r"(?:[A-Z][a-z]*[0-9]*)+")
_ADDUCT_WHOLE = re.compile(r"(?:[+-](?:[A-Z][a-z]*[0-9]*)+)+")
_ADDUCT_PART = re.compile(r"([+-])([A-Za-z0-9]+)")


class FormulaError(ConfigError):
    """A molecular formula or adduct is not valid (unknown element, bad syntax, negative count)."""


def parse_formula(formula: str, what: str = "formula") -> dict[str, int]:
    """Element counts of ``formula`` (repeated elements add up); :class:`FormulaError` if invalid."""
    text = _CLEAN.sub("", formula.strip())
    if not text:
        raise FormulaError(f"empty {what}")
    if not _WHOLE.fullmatch(text):
        bad = re.sub(r"[A-Za-z0-9]", "", text) or text
        raise FormulaError(f"{what} {formula!r} is not element symbols with counts (found {bad[:10]!r})")
    counts: Counter[str] = Counter()
    for element, n in _PART.findall(text):
        if element not in ELEMENTS:
            raise FormulaError(f"unknown element {element!r} in {what} {formula!r}")
        counts[element] += int(n or "1")
    if not any(counts.values()):
        raise FormulaError(f"{what} {formula!r} has no atoms")
    return dict(counts)


def check_adduct(adduct: str) -> str:
    """``adduct`` unchanged if valid (``+H``, ``-H2O+Na``, ``[M]+``), else :class:`FormulaError`."""
    if adduct in CHARGE_ONLY_ADDUCTS:
        return adduct
    if not _ADDUCT_WHOLE.fullmatch(adduct):
        raise FormulaError(f"adduct {adduct!r} is not +/- followed by a formula (e.g. '+H', '-H2O+Na', '[M]+')")
    for _, part in _ADDUCT_PART.findall(adduct):
        for element, _n in _PART.findall(part):
            if element not in ELEMENTS:
                raise FormulaError(f"unknown element {element!r} in adduct {adduct!r}")
    return adduct


def format_modifiers(*adducts: str) -> str:
    """Concatenated modifiers, charge-only markers left out (METASPACE's ``format_modifiers``)."""
    return "".join(a for a in adducts if a and a not in CHARGE_ONLY_ADDUCTS)


def _chnops(counts: Counter[str]) -> str:
    order = [*"CHNOPS", *sorted(k for k in counts if len(k) > 1 or k not in "CHNOPS")]
    parts = []
    for element in order:
        n = counts.get(element, 0)
        if n:
            parts.append(element + (str(n) if n > 1 else ""))
    return "".join(parts)


def generate_ion_formula(formula: str, *adducts: str) -> str:
    """The ion's formula after applying ``adducts`` in order, in CHNOPS order.

    Raises :class:`FormulaError` when a step would make an element count negative or
    leave no atoms (such ions do not exist and METASPACE drops them).
    """
    counts: Counter[str] = Counter(parse_formula(formula))
    for adduct in adducts:
        if not adduct or adduct in CHARGE_ONLY_ADDUCTS:
            continue
        check_adduct(adduct)
        for sign, part in _ADDUCT_PART.findall(adduct):
            for element, n in _PART.findall(part):
                counts[element] += int(n or "1") * (1 if sign == "+" else -1)
                if counts[element] < 0:
                    raise FormulaError(f"{formula}{adduct}: negative count of {element}")
    if not any(n > 0 for n in counts.values()):
        raise FormulaError(f"{formula}{''.join(adducts)}: no atoms left")
    return _chnops(counts)
