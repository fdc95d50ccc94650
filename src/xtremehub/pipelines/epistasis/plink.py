"""PLINK 1 binary input (``.bed/.bim/.fam``), the common format of GWAS data, via ``bed-reader``.

The three files are fetched through the storage layer (any URL) into a temporary directory.
Genotypes are allele-1 counts (0, 1, 2; missing -1); the ``.fam`` phenotype is 1 control, 2 case.
A SNP's key is ``<chromosome>-<id>``.

Example:
    >>> import tempfile, numpy as np
    >>> from bed_reader import to_bed
    >>> from xtremehub.pipelines.epistasis.plink import read_plink, read_plink_labels
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     to_bed(f"{tmp}/c.bed", np.array([[0, 2], [1, -127], [2, 0]], dtype=np.int8),
    ...            properties={"pheno": ["1", "2", "2"], "sid": ["rs1", "rs2"], "chromosome": ["3", "3"]})
    ...     block, labels = read_plink(f"{tmp}/c.bed"), read_plink_labels(f"{tmp}/c.fam")
    >>> block.keys, block.genotypes.tolist(), labels.tolist()
    (('3-rs1', '3-rs2'), [[0, 1, 2], [2, -1, 0]], [0, 1, 1])
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.errors import MalformedRecord, MissingDependency
from xtremehub.pipelines.epistasis.loader import GenotypeBlock

__all__ = ["is_plink", "read_plink", "read_plink_labels"]


def is_plink(url: str) -> bool:
    return str(url).endswith(".bed")


def read_plink(url: str, *, settings: Settings | None = None) -> GenotypeBlock:
    """Hard calls of every SNP in ``<prefix>.bed`` (with its ``.bim`` and ``.fam``)."""
    try:
        from bed_reader import open_bed
    except ImportError as exc:
        raise MissingDependency("PLINK input needs bed-reader: pip install 'xtremehub[hpc]'") from exc
    prefix = str(url)[: -len(".bed")]
    with tempfile.TemporaryDirectory(prefix="xhub-plink-") as tmp:
        for ext in ("bed", "bim", "fam"):
            Path(tmp, f"data.{ext}").write_bytes(storage.get(f"{prefix}.{ext}", settings=settings))
        try:
            with open_bed(Path(tmp, "data.bed")) as bed:
                values = bed.read(dtype="int8", order="C")  # (patients, snps), missing -127
                keys = tuple(f"{c}-{s}" for c, s in zip(bed.chromosome.tolist(), bed.sid.tolist(), strict=True))
        except (ValueError, OSError) as exc:
            raise MalformedRecord(str(url), 0, f"not a valid PLINK .bed/.bim/.fam set: {exc}", "record") from exc
    genotypes = np.ascontiguousarray(values.T)
    genotypes[genotypes < 0] = -1
    return GenotypeBlock(str(url), keys, genotypes)


def read_plink_labels(url: str, *, settings: Settings | None = None) -> npt.NDArray[np.int8]:
    """Case (1) / control (0) labels from a ``.fam`` file's sixth column (PLINK: 1 control, 2 case)."""
    labels: list[int] = []
    for line_no, line in enumerate(
        storage.get(url, settings=settings).decode("utf-8", errors="replace").splitlines(), start=1
    ):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 6 or fields[5] not in ("1", "2"):
            value = fields[5] if len(fields) >= 6 else "<missing>"
            detail = f"patient row {line_no}: phenotype {value!r} is not 1 (control) or 2 (case)"
            raise MalformedRecord(str(url), line_no, detail, "record")
        labels.append(int(fields[5]) - 1)
    return np.asarray(labels, dtype=np.int8)
