"""Loader: case/control labels (Oxford ``.sample``) and genotype-probability files (IMPUTE ``.gen``).

A genotype file is gzip (or plain) text: an optional VCF-like header (lines starting with ``#`` or
``BCF``), then one row per SNP: five leading columns (``chr $ id $ $`` in the seed's data) and three
probabilities P(AA) P(AB) P(BB) per patient. Bad input raises a typed error naming the file and row.

Example:
    >>> import gzip
    >>> from xtremehub.pipelines.epistasis.loader import read_labels, read_sample
    >>> labels = read_labels(b"ID_1 bin1\\n0 B\\n$ 0\\n$ 1\\n", "labels.sample")
    >>> labels.tolist()
    [0, 1]
    >>> gen = gzip.compress(b"#CHROM\\nchr1 $ rs1 $ $ 1 0 0 0.05 0.05 0.9\\n")
    >>> block = read_sample(gen, "chr1.gz", n_patients=2)
    >>> block.keys, block.genotypes.tolist()
    (('chr1-$-rs1',), [[0, -1]])
"""

from __future__ import annotations

import io
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from xtremehub.errors import CorruptData, MalformedRecord, TruncatedData
from xtremehub.pipelines.epistasis.learner import filter_imputation

__all__ = ["GenotypeBlock", "convert_labels", "convert_samples", "gunzip", "read_labels", "read_sample"]

#: Identifier and placeholder columns before the probabilities (``chr0 $ 000000 $ $``).
LEAD_COLUMNS = 5


@dataclass(frozen=True)
class GenotypeBlock:
    """Hard genotype calls of some SNPs: ``genotypes[snp, patient]`` in {0, 1, 2}, -1 when missing."""

    url: str
    keys: tuple[str, ...]
    genotypes: npt.NDArray[np.int8]

    @property
    def n_snps(self) -> int:
        return len(self.keys)

    def rows(self, start: int, stop: int | None) -> GenotypeBlock:
        """The block of rows ``[start, stop)``."""
        return GenotypeBlock(self.url, self.keys[start:stop], self.genotypes[start:stop])


def read_labels(data: bytes | str, url: str = "<labels>") -> npt.NDArray[np.int8]:
    """Case (1) / control (0) labels from an Oxford ``.sample`` file: two header lines, phenotype last.

    >>> read_labels("a b\\nx y\\n1 2 0\\n3 4 x\\n", "l.sample")
    Traceback (most recent call last):
    ...
    xtremehub.errors.MalformedRecord: l.sample: patient row 2 (line 4): phenotype 'x' is not 0 or 1 (at record offset 2)
    """
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    labels: list[int] = []
    lines = text.splitlines()
    for line_no, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        value = fields[-1]
        if value not in ("0", "1"):
            row = len(labels) + 1
            raise MalformedRecord(
                url, row, f"patient row {row} (line {line_no}): phenotype {value!r} is not 0 or 1", "record"
            )
        labels.append(int(value))
    if len(labels) < 2:
        raise MalformedRecord(url, len(labels), "fewer than 2 patients after the 2 header lines", "record")
    return np.asarray(labels, dtype=np.int8)


def convert_labels(labels: npt.NDArray[np.int8]) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
    """``(cases, controls)`` indicator arrays, as the seed's ``convert_labels``.

    >>> [a.tolist() for a in convert_labels(np.array([0, 1, 1], dtype=np.int8))]
    [[0, 1, 1], [1, 0, 0]]
    """
    cases = (labels == 1).astype(np.int8)
    return cases, (1 - cases).astype(np.int8)


def gunzip(data: bytes, url: str) -> bytes:
    """Decompress gzip ``data`` (several members allowed; plain text passes through).

    A stream that ends early raises :class:`~xtremehub.errors.TruncatedData` naming the genotype row
    it ends in.

    >>> import gzip
    >>> gunzip(gzip.compress(b"a\\n") + gzip.compress(b"b\\n"), "x.gz")
    b'a\\nb\\n'
    """
    if data[:2] != b"\x1f\x8b":
        return data
    out: list[bytes] = []
    rest = data
    consumed = 0
    while rest:
        dec = zlib.decompressobj(wbits=31)
        try:
            out.append(dec.decompress(rest))
        except zlib.error as exc:
            raise CorruptData(url, consumed, f"not valid gzip: {exc}") from exc
        if not dec.eof:
            partial = b"".join(out)
            complete = partial.count(b"\n")
            rows = sum(1 for line in partial.split(b"\n")[:complete] if line.strip() and not _is_header(line))
            raise TruncatedData(
                url,
                len(data),
                f"gzip stream ends inside genotype row {rows + 1} (line {complete + 1}): the file is truncated",
            )
        consumed += len(rest) - len(dec.unused_data)
        rest = dec.unused_data
    return b"".join(out)


def _is_header(line: bytes) -> bool:
    return line.startswith((b"#", b"BCF"))


#: Rows parsed and converted together (bounds the float64 probabilities held at once).
ROWS_PER_CHUNK = 64


def read_sample(
    data: bytes,
    url: str = "<genotypes>",
    *,
    n_patients: int | None = None,
    labels_url: str = "the labels file",
    call_threshold: float = 0.9,
    prob_tolerance: float = 0.02,
) -> GenotypeBlock:
    """Parse one genotype file (gzip or plain bytes) into hard calls.

    Probabilities are parsed as float64 (so ``> 0.9`` decides as the seed's ``float(x) > 0.9``), in
    chunks of rows: with pyarrow's CSV reader when installed and the rows are plainly formatted
    (about 4x faster than ``np.fromstring``), else row by row.

    Args:
        data: the file's bytes.
        url: its name, for errors.
        n_patients: the label count; a first row with another patient count is an error naming both.
        labels_url: the labels file's name, for that error.
        call_threshold: see :func:`~xtremehub.pipelines.epistasis.learner.filter_imputation`.
        prob_tolerance: a patient's probabilities must sum to 1 within this (or all be 0: missing).
    """
    text = gunzip(data, url)
    keys: list[str] = []
    rests: list[bytes] = []
    line_nos: list[int] = []
    for line_no, line in enumerate(text.split(b"\n"), start=1):
        if not line.strip() or _is_header(line):
            continue
        row = len(keys) + 1
        parts = line.split(None, LEAD_COLUMNS)
        if len(parts) <= LEAD_COLUMNS:
            raise MalformedRecord(url, row, f"row {row} (line {line_no}) has no probability columns", "record")
        keys.append(b"-".join(parts[:3]).decode("utf-8", errors="replace"))
        rests.append(parts[LEAD_COLUMNS].rstrip())
        line_nos.append(line_no)
    expected = None if n_patients is None else 3 * n_patients
    if expected is None and rests:
        expected = _floats(rests[0], url, 1, line_nos[0]).size
        if expected % 3:
            detail = f"row 1 (line {line_nos[0]}): {expected} probabilities, not 3 per patient"
            raise MalformedRecord(url, 1, detail, "record")
    n = (expected or 0) // 3
    calls = [np.zeros((0, n), dtype=np.int8)]
    for start in range(0, len(rests), ROWS_PER_CHUNK):
        chunk = rests[start : start + ROWS_PER_CHUNK]
        probs = _parse_fast(chunk, expected or 0)
        if probs is None:  # irregular spacing, another number format, or an error to locate
            probs = np.vstack(
                [
                    _checked_row(r, url, start + k + 1, line_nos[start + k], expected or 0, n_patients, labels_url)
                    for k, r in enumerate(chunk)
                ]
            )
        _check_sums(probs, url, prob_tolerance, start)
        calls.append(convert_samples(probs, call_threshold))
    return GenotypeBlock(url, tuple(keys), np.vstack(calls))


def _parse_fast(rows: list[bytes], expected: int) -> npt.NDArray[np.float64] | None:
    """Rows of single-space-separated numbers, all with ``expected`` values, in one pyarrow parse;
    ``None`` when that does not apply (the caller parses row by row and reports any error)."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    for r in rows:
        if b"  " in r or b"\t" in r or b"," in r or b'"' in r or r.count(b" ") + 1 != expected:
            return None
    column = b"\n".join(rows).replace(b" ", b"\n")
    try:
        table = pacsv.read_csv(
            io.BytesIO(column),
            read_options=pacsv.ReadOptions(column_names=["p"], use_threads=False, block_size=1 << 26),
            convert_options=pacsv.ConvertOptions(column_types={"p": pa.float64()}),
        )
    except pa.ArrowInvalid:
        return None
    values = table.column(0)
    if values.null_count or len(values) != len(rows) * expected:
        return None
    return np.asarray(values.to_numpy(), dtype=np.float64).reshape(len(rows), expected)


def _checked_row(
    field: bytes, url: str, row: int, line_no: int, expected: int, n_patients: int | None, labels_url: str
) -> npt.NDArray[np.float64]:
    values = _floats(field, url, row, line_no)
    if values.size != expected:
        if row == 1 and n_patients is not None and values.size % 3 == 0:
            detail = (
                f"row {row} (line {line_no}) holds {values.size // 3} patients but {labels_url} "
                f"lists {n_patients}: the label count does not match"
            )
        else:
            detail = (
                f"row {row} (line {line_no}) has {values.size + LEAD_COLUMNS} columns, expected "
                f"{expected + LEAD_COLUMNS} ({LEAD_COLUMNS} identifiers + 3 x {expected // 3} patients)"
            )
        raise MalformedRecord(url, row, detail, "record")
    return values


def _floats(field: bytes, url: str, row: int, line_no: int) -> npt.NDArray[np.float64]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            return np.fromstring(field, dtype=np.float64, sep=" ")
        except (DeprecationWarning, ValueError):
            bad = next((tok for tok in field.split() if not _is_number(tok)), field[:20])
            detail = f"row {row} (line {line_no}): {bad.decode(errors='replace')!r} is not a probability"
            raise MalformedRecord(url, row, detail, "record") from None


def _is_number(token: bytes) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _check_sums(probs: npt.NDArray[np.float64], url: str, tolerance: float, row_offset: int = 0) -> None:
    if probs.size == 0:
        return
    triples = probs.reshape(probs.shape[0], -1, 3)
    sums = triples.sum(axis=2)
    bad = ((np.abs(sums - 1) > tolerance) & (sums != 0)) | (triples.min(axis=2) < 0)
    if bad.any():
        snp, patient = (int(v) for v in np.argwhere(bad)[0])
        row = row_offset + snp + 1
        got = " ".join(f"{v:g}" for v in triples[snp, patient])
        detail = (
            f"row {row}, patient {patient + 1}: probabilities {got} sum to {sums[snp, patient]:.4g}, "
            f"not 1 (+-{tolerance})"
        )
        raise MalformedRecord(url, row, detail, "record")


def convert_samples(probs: npt.NDArray[np.floating], call_threshold: float = 0.9) -> npt.NDArray[np.int8]:
    """Probability rows ``(snps, 3 * patients)`` -> hard calls ``(snps, patients)``, -1 when missing.

    >>> convert_samples(np.array([[0.95, 0.05, 0.0, 0.5, 0.5, 0.0, 0, 0, 1]])).tolist()
    [[0, -1, 2]]
    """
    return filter_imputation(probs.reshape(probs.shape[0], -1, 3), call_threshold)


def stack_blocks(blocks: Sequence[GenotypeBlock]) -> GenotypeBlock:
    """One block holding the rows of ``blocks`` in order (their urls joined by ``+``)."""
    return GenotypeBlock(
        "+".join(b.url for b in blocks),
        tuple(k for b in blocks for k in b.keys),
        np.vstack([b.genotypes for b in blocks]),
    )
