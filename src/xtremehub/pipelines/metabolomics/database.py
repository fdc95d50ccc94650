"""Molecular databases: a CSV or TSV of molecules (``id``, ``name``, ``formula``), validated.

The delimiter is the header's (tab if the header has one, else comma). Every row is
checked; the first bad one raises :class:`~xtremehub.errors.MalformedRecord` naming the
file and the row (1-based, header = row 1). Formulas are annotated once each, as in
METASPACE (molecules sharing a formula share its annotation; their ids and names are
kept together).

Example:
    >>> from xtremehub import storage
    >>> text = b"id,name,formula\\n1,glucose,C6H12O6\\n2,fructose,C6H12O6\\n3,water,H2O\\n"
    >>> _ = storage.put("mem://db/mols.csv", text)
    >>> db = load_database("mem://db/mols.csv")
    >>> db.formulas, db.molecules["C6H12O6"]
    (('C6H12O6', 'H2O'), (('1', 'glucose'), ('2', 'fructose')))
    >>> _ = storage.put("mem://db/bad.csv", b"id,name,formula\\n1,x,C6H12O6\\n2,y,C6Xx\\n")
    >>> try:
    ...     load_database("mem://db/bad.csv")
    ... except MalformedRecord as exc:
    ...     print(exc.detail)
    row 3 (id '2'): unknown element 'Xx' in formula 'C6Xx'
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.errors import ConfigError, MalformedRecord
from xtremehub.pipelines.metabolomics.formulas import FormulaError, parse_formula

__all__ = ["MolecularDatabase", "load_database"]

REQUIRED_COLUMNS = ("id", "name", "formula")


@dataclass(frozen=True)
class MolecularDatabase:
    """Unique formulas (file order) and, per formula, its molecules ``(id, name)``."""

    url: str
    formulas: tuple[str, ...]
    molecules: dict[str, tuple[tuple[str, str], ...]]

    @property
    def digest(self) -> str:
        """Content hash of the formulas (keys caches)."""
        return hashlib.sha256("\n".join(self.formulas).encode()).hexdigest()[:16]

    @classmethod
    def from_formulas(cls, formulas: list[str] | tuple[str, ...], url: str = "<memory>") -> MolecularDatabase:
        """A database of ``formulas`` (ids and names are the row numbers), validated like a file."""
        text = "id,name,formula\n" + "".join(f"{i},{i},{f}\n" for i, f in enumerate(formulas, 1))
        return parse_database(text, url)


def parse_database(text: str, url: str) -> MolecularDatabase:
    """Parse the text of a database file (see the module docstring)."""
    header_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in header_line else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise MalformedRecord(url, 1, f"header {header} lacks column(s) {missing} (need id, name, formula)", "record")
    at = {c: header.index(c) for c in REQUIRED_COLUMNS}
    molecules: dict[str, list[tuple[str, str]]] = {}
    for row_number, row in enumerate(reader, 2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise MalformedRecord(
                url, row_number, f"row {row_number}: {len(row)} fields, the header has {len(header)}", "record"
            )
        mol_id, name, formula = (row[at[c]].strip() for c in REQUIRED_COLUMNS)
        try:
            parse_formula(formula)
        except FormulaError as exc:
            raise MalformedRecord(url, row_number, f"row {row_number} (id {mol_id!r}): {exc}", "record") from None
        molecules.setdefault(formula, []).append((mol_id, name))
    if not molecules:
        raise ConfigError(f"{url}: the molecular database has no molecules")
    return MolecularDatabase(url, tuple(molecules), {f: tuple(m) for f, m in molecules.items()})


def load_database(url: str, *, settings: Settings | None = None) -> MolecularDatabase:
    """Read and validate a CSV/TSV molecular database from storage."""
    try:
        text = storage.get(url, settings=settings).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedRecord(url, exc.start, "the database is not UTF-8 text", "uncompressed") from None
    return parse_database(text, url)
