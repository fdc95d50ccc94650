"""Learner: MDR over many SNP pairs per NumPy operation.

For a block of SNPs ``A`` against a block ``B`` each patient falls in one of 16 cells (genotype 0, 1,
2 or missing on each SNP). The cell counts of every pair, per cross-validation fold and class, come
from one float32 matrix product per (fold, class) group: patients are reordered so each group is a
contiguous column range, and the indicator rows ``[g == 0, g == 1, called]`` of ``A`` times those of
``B`` give the 3 x 3 cumulative counts, from which the 4 x 4 cell table follows by differences. The
risk tables and fold errors are then array expressions over all pairs at once: no Python loop per
pair or per patient.

Two modes (``MDRConfig.mode``):

* ``"default"``: fold ``f`` tests patients ``[f*N//cv, (f+1)*N//cv)``; a cell is high-risk when its
  training cases/controls ratio is at least the *training* cases/controls ratio (ties high, empty
  cells low, a missing call is a genotype level of its own); a test patient in a high-risk cell is
  predicted a case; the fold value is the misclassified fraction of the test patients (lower is
  better). This is scikit-mdr's ``MDRClassifier(tie_break=1, default_label=0)`` fitted per fold.
* ``"compat"``: the seed's Lithops NumPy logic, quirks included (see ``docs/epistasis.md``).

Example:
    >>> import numpy as np
    >>> from xtremehub.pipelines.epistasis import Cohort, MDRConfig, apply_mdr
    >>> labels = np.array([0, 1] * 10, dtype=np.int8)
    >>> g = np.array([[0, 2] * 10, [1] * 20, [0, 1, 2, 0] * 5], dtype=np.int8)
    >>> res = apply_mdr(g, g, Cohort.build(labels, MDRConfig()), triangle=True)
    >>> res.first.tolist(), res.second.tolist()
    ([0, 0, 1], [1, 2, 2])
    >>> res.errors.mean(axis=1).round(2).tolist()  # SNP 0 separates the classes perfectly
    [0.0, 0.0, 0.25]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from xtremehub.errors import ConfigError
from xtremehub.pipelines.epistasis.config import MDRConfig, Mode

__all__ = [
    "Cohort",
    "MDRResult",
    "apply_mdr",
    "count_cells",
    "filter_imputation",
    "get_error",
    "get_risk_array",
    "transform_patients",
]

F32 = npt.NDArray[np.float32]
I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]

#: Cells of a pair: ``4 * x + y`` with x, y the genotypes (0, 1, 2; 3 = missing) of the two SNPs.
N_CELLS = 16


def filter_imputation(triples: npt.NDArray[np.floating], call_threshold: float = 0.9) -> I8:
    """Hard calls from probability triples ``(..., 3)``: the genotype whose probability exceeds
    ``call_threshold``, else -1 (missing).

    >>> filter_imputation(np.array([[0.95, 0.05, 0], [0.2, 0.3, 0.5], [0, 0.01, 0.99]])).tolist()
    [0, -1, 2]
    """
    called = triples > call_threshold
    calls: I8 = np.argmax(called, axis=-1).astype(np.int8)
    calls[~called.any(axis=-1)] = -1
    return calls


def transform_patients(first: I8, second: I8) -> I8:
    """Each patient's cell ``4 * x + y`` for SNP pairs (missing -> 3); shapes broadcast.

    >>> transform_patients(np.array([0, 1, -1], dtype=np.int8), np.array([2, -1, 0], dtype=np.int8)).tolist()
    [2, 7, 12]
    """
    a = np.where(first < 0, 3, first).astype(np.int8)
    b = np.where(second < 0, 3, second).astype(np.int8)
    return np.asarray(4 * a + b, dtype=np.int8)


@dataclass(frozen=True)
class Cohort:
    """Labels and cross-validation folds, with patients grouped by (test fold, class).

    ``groups[f, c]`` is the ``[start, stop)`` column range, in ``order``, of the patients of class
    ``c`` tested in fold ``f``; ``f == cv_sets`` holds patients no fold tests (the compat folds can
    leave the last patient out).
    """

    labels: I8
    mode: Mode
    cv_sets: int
    order: I64
    groups: I64
    test_sizes: I64

    @classmethod
    def build(cls, labels: npt.ArrayLike, config: MDRConfig) -> Cohort:
        """Folds for ``labels`` (0 control, 1 case) as ``config.mode`` defines them.

        >>> c = Cohort.build([0, 1, 1, 0, 1], MDRConfig(cv_sets=2))
        >>> c.fold_of.tolist(), c.test_sizes.tolist()
        ([0, 0, 1, 1, 1], [2, 3])
        """
        lab = np.asarray(labels, dtype=np.int8)
        n, cv = lab.size, config.cv_sets
        if n < cv:
            raise ConfigError(f"{n} patients cannot fill {cv} cross-validation folds")
        fold = np.full(n, cv, dtype=np.int64)
        for f in range(cv):
            if config.mode == "compat":  # the seed: float block size, bounds truncated by int()
                bs = n / cv
                start, stop = int(f * bs), int(f * bs + bs)
            else:
                start, stop = f * n // cv, (f + 1) * n // cv
            fold[start:stop] = f
        key = fold * 2 + lab
        order = np.argsort(key, kind="stable")
        counts = np.bincount(key, minlength=2 * (cv + 1))
        edges = np.concatenate([[0], np.cumsum(counts)])
        groups = np.stack([edges[:-1], edges[1:]], axis=1).reshape(cv + 1, 2, 2)
        test_sizes = counts.reshape(cv + 1, 2).sum(axis=1)[:cv]
        return cls(lab, config.mode, cv, order.astype(np.int64), groups.astype(np.int64), test_sizes.astype(np.int64))

    @property
    def n_patients(self) -> int:
        return int(self.labels.size)

    @property
    def fold_of(self) -> I64:
        """Each patient's test fold (``cv_sets``: never tested), in the original order."""
        out = np.empty(self.n_patients, dtype=np.int64)
        for f in range(self.cv_sets + 1):
            for c in range(2):
                s, e = self.groups[f, c]
                out[self.order[s:e]] = f
        return out

    def group_sizes(self) -> I64:
        """Patients per (fold, class): shape ``(cv_sets + 1, 2)``."""
        return (self.groups[:, :, 1] - self.groups[:, :, 0]).astype(np.int64)


def _indicators(genotypes: I8, levels: int) -> F32:
    """``(levels * m, N)`` float32 rows ``[g == 0 | g == 1 | called]`` (the first ``levels``) of ``m`` SNPs."""
    m, n = genotypes.shape
    out = np.empty((levels, m, n), dtype=np.float32)
    np.equal(genotypes, 0, out=out[0], casting="unsafe")
    np.equal(genotypes, 1, out=out[1], casting="unsafe")
    if levels == 3:
        np.greater_equal(genotypes, 0, out=out[2], casting="unsafe")
    return out.reshape(levels * m, n)


def _diff_inplace(q: F32) -> None:
    """Cumulative levels ``(0, 1, called, all)`` -> genotype levels ``(0, 1, 2, missing)``, in place,
    on axes 2 and 3 of ``q`` (``(fold, class, x, y, m1, m2)``: whole contiguous planes per operation)."""
    for axis in (2, 3):
        v = np.moveaxis(q, axis, 0)
        v[3] -= v[2]
        v[2] -= v[0]
        v[2] -= v[1]


def count_cells(first: I8, second: I8, cohort: Cohort) -> npt.NDArray[np.int32]:
    """Cell counts of every pair: shape ``(cv_sets + 1, 2, m1, m2, 16)`` (fold group, class, SNPs, cell).

    ``first`` and ``second`` are genotype blocks ``(m, N)`` in the original patient order.

    >>> cohort = Cohort.build([0, 1, 0, 1], MDRConfig(cv_sets=2))
    >>> g = np.array([[0, 0, 2, -1]], dtype=np.int8)
    >>> c = count_cells(g, g, cohort)
    >>> c.shape, c.sum(axis=(0, 1))[0, 0].nonzero()[0].tolist()  # cells (0,0), (2,2), (miss,miss)
    ((3, 2, 1, 1, 16), [0, 10, 15])
    """
    # Without missing calls "called" is every patient: 4 products per pair instead of 9.
    levels = 2 if (first >= 0).all() and (second >= 0).all() else 3
    xa = _indicators(first[:, cohort.order], levels)
    xb = xa if second is first else _indicators(second[:, cohort.order], levels)
    ma, mb = first.shape[0], second.shape[0]
    g_f, g_c = cohort.cv_sets + 1, 2
    q = np.zeros((g_f, g_c, 4, 4, ma, mb), dtype=np.float32)
    for f in range(g_f):
        for c in range(g_c):
            s, e = (int(v) for v in cohort.groups[f, c])
            if e == s:
                continue
            pa, pb = xa[:, s:e], xb[:, s:e]
            prod = (pa @ pb.T).reshape(levels, ma, levels, mb)
            q[f, c, :levels, :levels] = prod.transpose(0, 2, 1, 3)
            sums_a = pa.sum(axis=1).reshape(levels, ma)
            sums_b = pb.sum(axis=1).reshape(levels, mb)
            if levels == 2:
                sums_a = np.vstack([sums_a, np.full((1, ma), e - s, dtype=np.float32)])
                sums_b = np.vstack([sums_b, np.full((1, mb), e - s, dtype=np.float32)])
                q[f, c, :2, 2] = sums_a[:2, :, None]
                q[f, c, 2, :2] = sums_b[:2, None, :]
                q[f, c, 2, 2] = e - s
            q[f, c, :3, 3] = sums_a[:, :, None]
            q[f, c, 3, :3] = sums_b[:, None, :]
            q[f, c, 3, 3] = e - s
    _diff_inplace(q)
    cells = q.astype(np.int32).reshape(g_f, g_c, N_CELLS, ma, mb)  # exact: integers below 2**24
    return np.ascontiguousarray(np.moveaxis(cells, 2, -1))


def _compat_codes() -> F32:
    """The seed's per-patient code ``3 * (x + 1) - y`` (0 for a missing call on the first SNP, and
    a missing call on the second SNP counted as 0) of each cell; negative codes are dropped."""
    m = np.zeros((N_CELLS, 10), dtype=np.float32)
    for x in range(4):
        for y in range(4):
            pt1 = 3 * (x + 1) if x < 3 else 0
            pt2 = y if y < 3 else 0
            code = pt1 - pt2
            if code >= 0:
                m[4 * x + y, code] = 1
    return m


_CODES = _compat_codes()


def _train_test(counts: npt.NDArray[np.int32], cohort: Cohort) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """Per fold: (train, test) counts ``(cv, 2, ..., cells)``."""
    total = counts.sum(axis=0, dtype=np.int32)
    test = counts[: cohort.cv_sets]
    return total[None] - test, test


def _int_for(n_patients: int) -> type[np.signedinteger[Any]]:
    """An integer type holding products of two patient counts."""
    return np.int32 if n_patients < 46_000 else np.int64


def get_risk_array(counts: npt.NDArray[np.int32], cohort: Cohort) -> npt.NDArray[np.bool_]:
    """High-risk cells per fold and pair: ``(cv, m1, m2, 16)`` (``"compat"``: ``(cv, m1, m2, 10)``
    over the seed's codes 0-9, before it skips the first high-risk one).

    >>> cohort = Cohort.build([0, 1] * 5, MDRConfig())
    >>> g = np.array([[0, 1] * 5], dtype=np.int8)
    >>> get_risk_array(count_cells(g, g, cohort), cohort)[0, 0, 0].nonzero()[0].tolist()  # cell (1, 1)
    [5]
    """
    train, _ = _train_test(counts, cohort)
    sizes = cohort.group_sizes()
    tr_cls = sizes.sum(axis=0)[None, :] - sizes[: cohort.cv_sets]  # (cv, 2): training controls, cases
    extra = (1,) * (counts.ndim - 3)
    if cohort.mode == "default":
        tr_ctrl, tr_case = train[:, 0], train[:, 1]
        dtype = _int_for(cohort.n_patients)
        n_ctrl = tr_cls[:, 0].reshape(-1, *extra, 1).astype(dtype)
        n_case = tr_cls[:, 1].reshape(-1, *extra, 1).astype(dtype)
        tr_ctrl, tr_case = tr_ctrl.astype(dtype, copy=False), tr_case.astype(dtype, copy=False)
        return np.asarray((tr_case * n_ctrl >= tr_ctrl * n_case) & (tr_case + tr_ctrl > 0))
    codes = train.astype(np.float32) @ _CODES  # exact small integers
    n = cohort.n_patients
    sums = []
    for cls in (1, 0):
        s = codes[:, cls].astype(np.float64)
        s[..., 0] += n - tr_cls[:, cls].reshape(-1, *extra)  # the seed also counts every 0 product here
        sums.append(s)
    sumcases, sumcontrols = sums
    risk = np.divide(sumcases, sumcontrols, out=np.zeros_like(sumcases), where=sumcontrols != 0)
    n_cases = int(cohort.labels.sum())
    ccratio = n_cases / (n - n_cases)
    return np.asarray((risk >= ccratio) & (ccratio <= 1))


def get_error(high: npt.NDArray[np.bool_], counts: npt.NDArray[np.int32], cohort: Cohort) -> npt.NDArray[np.float64]:
    """Each fold's value per pair, ``(cv, m1, m2)``: the misclassified test fraction (``"default"``),
    or the seed's value (``"compat"``: the test fraction whose prediction equals the *first*
    patient's label, with the lowest high-risk code never predicted).

    >>> cohort = Cohort.build([0, 1] * 5, MDRConfig())
    >>> g = np.array([[0, 1] * 5], dtype=np.int8)
    >>> counts = count_cells(g, g, cohort)
    >>> get_error(get_risk_array(counts, cohort), counts, cohort)[:, 0, 0].tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0]
    """
    _, test = _train_test(counts, cohort)
    sizes = cohort.test_sizes.reshape(-1, *(1,) * (counts.ndim - 3)).astype(np.float64)
    if cohort.mode == "default":
        wrong = np.where(high, test[:, 0], test[:, 1]).sum(axis=-1)
        return np.asarray(wrong / sizes)
    first = np.argmax(high, axis=-1)
    kept = high & (np.arange(10) != first[..., None])
    tested = (test[:, 0] + test[:, 1]).astype(np.float32) @ _CODES
    predicted_case = np.where(kept, tested, 0).sum(axis=-1).astype(np.int64)
    agree = predicted_case if int(cohort.labels[0]) == 1 else cohort.test_sizes.reshape(sizes.shape) - predicted_case
    return np.asarray(agree / sizes)


@dataclass(frozen=True)
class MDRResult:
    """The fold values of pairs ``(first[k], second[k])`` (row indices into the two blocks)."""

    first: I64
    second: I64
    errors: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.first.size)


def apply_mdr(first: I8, second: I8, cohort: Cohort, *, triangle: bool = False, block_snps: int = 0) -> MDRResult:
    """Evaluate every pair ``(i, j)`` of a row of ``first`` with a row of ``second``.

    Args:
        first, second: genotype blocks ``(m, N)`` (0, 1, 2, -1 missing).
        cohort: labels and folds.
        triangle: ``first`` and ``second`` are the same SNPs: only pairs ``i < j``.
        block_snps: SNPs per vectorised block (0: from the patient count).

    Pairs come out sorted by ``(i, j)``.
    """
    if first.shape[1] != cohort.n_patients or second.shape[1] != cohort.n_patients:
        raise ConfigError(f"genotype blocks hold {first.shape[1]} patients, labels {cohort.n_patients}")
    step = block_snps or MDRConfig(mode=cohort.mode, cv_sets=cohort.cv_sets).block_for(cohort.n_patients)
    parts_i, parts_j, parts_e = [], [], []
    for a0 in range(0, first.shape[0], step):
        ga = first[a0 : a0 + step]
        for b0 in range(a0 if triangle else 0, second.shape[0], step):
            gb = ga if (triangle and b0 == a0) else second[b0 : b0 + step]
            counts = count_cells(ga, gb, cohort)
            errors = get_error(get_risk_array(counts, cohort), counts, cohort)  # (cv, ma, mb)
            ii, jj = np.meshgrid(np.arange(ga.shape[0]), np.arange(gb.shape[0]), indexing="ij")
            keep = (ii < jj) if (triangle and b0 == a0) else np.ones(ii.shape, dtype=bool)
            parts_i.append(ii[keep] + a0)
            parts_j.append(jj[keep] + b0)
            parts_e.append(errors[:, keep].T)
    if not parts_i:
        return MDRResult(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, cohort.cv_sets)))
    i, j, e = np.concatenate(parts_i), np.concatenate(parts_j), np.concatenate(parts_e)
    order = np.lexsort((j, i))
    return MDRResult(i[order].astype(np.int64), j[order].astype(np.int64), e[order])
