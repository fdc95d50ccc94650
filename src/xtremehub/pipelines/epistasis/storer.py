"""Storer: per-pair fold values as seed-style compressed text and as Parquet; top-K; the plot.

Text (``save_output``): one line per pair, ``<snp1> <snp2> <v1> ... <v5> `` then a newline, gzip,
exactly as the seed's Lithops ``save_output`` writes it (keys ``chr-$-id``, Python float text).

Example:
    >>> import gzip
    >>> from xtremehub import storage
    >>> from xtremehub.pipelines.epistasis.storer import save_output
    >>> save_output("mem://mdr-doc/MDR_a-b.gz", ["c-$-1"], ["c-$-2"], [[0.5, 0.25, 1.0, 0.0, 0.5]])
    1
    >>> gzip.decompress(storage.get("mem://mdr-doc/MDR_a-b.gz"))
    b'c-$-1 c-$-2 0.5 0.25 1.0 0.0 0.5 \\n'
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.errors import MissingDependency

__all__ = ["categorical", "pairs_table", "plot_interactions", "read_table", "save_output", "top_pairs", "write_table"]


def save_output(
    url: str,
    first_keys: Sequence[str],
    second_keys: Sequence[str],
    errors: npt.ArrayLike,
    *,
    tolerance: float | None = None,
    settings: Settings | None = None,
) -> int:
    """Write pairs as the seed's gzip text to ``url``; with ``tolerance`` only pairs whose fold
    values sum to at most it (the seed's ``prediction_power_tol``). Returns the lines written."""
    values = np.asarray(errors, dtype=np.float64).reshape(len(first_keys), -1)
    keep = np.ones(len(values), dtype=bool) if tolerance is None else values.sum(axis=1) <= tolerance
    idx = np.flatnonzero(keep)
    columns = [[first_keys[i] for i in idx.tolist()], [second_keys[i] for i in idx.tolist()]]
    columns += [_float_text(values[idx, f]) for f in range(values.shape[1])]
    text = "".join(" ".join(row) + " \n" for row in zip(*columns, strict=True)) if idx.size else ""
    storage.put(url, gzip.compress(text.encode("utf-8"), compresslevel=1, mtime=0), settings=settings)
    return int(idx.size)


def _float_text(values: npt.NDArray[np.float64]) -> list[str]:
    """``str(v)`` of each value, formatted once per distinct value (fold values are few fractions)."""
    uniq, inverse = np.unique(values, return_inverse=True)
    texts = np.array([str(v) for v in uniq.tolist()], dtype=object)
    out: list[str] = texts[inverse.ravel()].tolist()
    return out


def _pa() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependency("Parquet output needs pyarrow: pip install 'xtremehub[hpc]'") from exc
    return pa, pq


def pairs_table(columns: dict[str, Any]) -> Any:
    """A ``pyarrow.Table`` of pair columns (``file1, row1, snp1, file2, row2, snp2, fold0.., mean``)."""
    pa, _ = _pa()
    return pa.table(columns)


def categorical(indices: npt.ArrayLike, values: Sequence[str]) -> Any:
    """A dictionary-encoded string column: ``values[indices]`` without a Python string per row."""
    pa, _ = _pa()
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(indices, dtype=np.int32)), pa.array(list(values)))


def write_table(url: str, table: Any, *, settings: Settings | None = None) -> None:
    """Write a table as Parquet (zstd) to ``url``."""
    _, pq = _pa()
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    storage.put(url, buf.getvalue(), settings=settings)


def read_table(url: str, *, settings: Settings | None = None) -> Any:
    _, pq = _pa()
    return pq.read_table(io.BytesIO(storage.get(url, settings=settings)))


def top_pairs(table: Any, k: int) -> Any:
    """The ``k`` pairs with the lowest mean fold value (ties: in table order, i.e. file and row order)."""
    if table.num_rows == 0:
        return table
    order = np.argsort(table["mean"].to_numpy(), kind="stable")
    return table.take(order[:k])


def top_text(top: Any) -> str:
    """The top-K table as TSV text."""
    names = top.column_names
    rows = ["\t".join(names)]
    cols = [top[n].to_pylist() for n in names]
    for values in zip(*cols, strict=True):
        rows.append("\t".join(f"{v:.6f}" if isinstance(v, float) else str(v) for v in values))
    return "\n".join(rows) + "\n"


def plot_interactions(
    first: npt.NDArray[np.int64],
    second: npt.NDArray[np.int64],
    score: npt.NDArray[np.float64],
    file_rows: Sequence[int],
    top_label: str,
    title: str,
) -> bytes:
    """A Manhattan-style PNG: per SNP (global index ``first``/``second``, files in order along x) the
    best ``score`` of its pairs, files in alternating colours, the top pair starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=100)
    n = int(sum(file_rows))
    if score.size and n:
        best = np.full(n, np.nan)
        for idx in (first, second):
            np.fmax.at(best, idx, score)
        x = np.arange(n)
        file_of = np.searchsorted(np.cumsum(file_rows), x, side="right")
        ax.scatter(x, best, c=file_of % 2, cmap="coolwarm", s=6, vmin=0, vmax=1)
        top = int(np.argmax(score))
        ax.scatter([first[top], second[top]], [score[top]] * 2, marker="*", s=120, c="black", label="top pair")
        text = top_label.replace("$", r"\$")  # no mathtext: SNP keys hold '$' placeholders
        ax.annotate(text, (float(first[top]), float(score[top])), textcoords="offset points", xytext=(8, -14))
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("SNP (files in order)")
    ax.set_ylabel("best pair: 1 - mean fold value")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
