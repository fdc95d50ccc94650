"""The seed's Lithops NumPy logic (neardata-eu/lithops-hpc ``examples/mdr/mdr.py``), ported as the
reference for the compatibility mode: same operations, same quirks, one pair at a time.

Only the storage and Lithops plumbing is left out; the arithmetic is kept as the seed has it.
"""

from __future__ import annotations

import gzip
from typing import Any

import numpy as np


def parse_labels(labels_data: str) -> list[int]:
    labels = []
    for line_count, row in enumerate(labels_data.splitlines()):
        if line_count < 2:
            continue
        r = row.strip(" ")
        labels.append(int(r[len(r) - 1]))
    return labels


def _filter(x: str) -> int:
    return 1 if float(x) > 0.9 else 0


input_filter = np.vectorize(_filter)


def parse_sample(samples_data: str) -> dict[str, Any]:
    sample = {}
    for line in samples_data.splitlines():
        if line.startswith(("BCFv", "#")):
            continue
        aux = line.split()
        sample[aux[0] + "-" + aux[1] + "-" + aux[2]] = input_filter(aux[5:])
    return sample


def transform_patients(x: tuple[Any, Any]) -> Any:
    patients1, patients2 = np.array(x[0]), np.array(x[1])
    patientsdf1 = np.reshape(patients1, (int(len(patients1) / 3), 3))
    patientsdf2 = np.reshape(patients2, (int(len(patients2) / 3), 3))
    pt1 = np.matmul(patientsdf1, np.transpose([1, 2, 3])) * 3
    pt2 = np.matmul(patientsdf2, np.transpose([0, 1, 2]))
    return pt1 - pt2


def count_occurrences(data: Any) -> Any:
    unique, counts = np.unique(data, return_counts=True)
    dtcounts = dict(zip(unique, counts, strict=True))
    return np.array([dtcounts.get(i, 0) for i in range(10)])


def apply_risk(patients: Any, risk: Any) -> Any:
    prediction = np.zeros(len(patients))
    casevalues = np.where(risk == 1)
    for n in casevalues[0][1:]:
        prediction[patients == n] = 1
    return prediction.astype(int)


class Reference:
    """The seed's per-run state (labels, ratio, folds) and its per-pair ``apply_mdr_dict``."""

    def __init__(self, labels_text: str, cv_sets: int = 5) -> None:
        labels = parse_labels(labels_text)
        self.npcases = np.array(labels)
        self.npcontrols = np.where((self.npcases == 0) | (self.npcases == 1), self.npcases ^ 1, self.npcases)
        self.ccratio = self.npcases.sum(axis=0) / self.npcontrols.sum(axis=0)
        n_patients = len(labels)
        block_size = n_patients / cv_sets
        self.cv_sets = cv_sets
        self.trainset, self.testset = [], []
        for i in range(cv_sets):
            nptrain = np.array([np.ones(n_patients, dtype=int)]).T
            nptrain[int(i * block_size) : int(i * block_size + block_size)] = 0
            nptest = np.where((nptrain == 0) | (nptrain == 1), nptrain ^ 1, nptrain)
            self.trainset.append(nptrain)
            self.testset.append(nptest)

    def get_risk_array(self, patients: Any) -> list[Any]:
        testerror = []
        for i in range(self.cv_sets):
            traindata, testdata = self.trainset[i], self.testset[i]
            ntest = np.sum(testdata)
            sumcases = count_occurrences(patients * self.npcases.T * traindata.T)
            sumcontrols = count_occurrences(patients * self.npcontrols.T * traindata.T)
            risk = np.divide(sumcases, sumcontrols, out=np.zeros(sumcases.shape, dtype=float), where=sumcontrols != 0)
            risk[risk >= self.ccratio] = 1
            risk[risk < self.ccratio] = 0
            prediction = apply_risk(patients, risk)
            cv_testerror = (prediction + self.npcases.T[0]) % 2
            cv_testerror = (1 - cv_testerror) * testdata.T
            testerror.append(cv_testerror.sum() / ntest)
        return testerror

    def apply_mdr_dict(self, x: tuple[str, str], rd1: dict[str, Any], rd2: dict[str, Any]) -> Any:
        patients = transform_patients((rd1[x[0]], rd2[x[1]]))
        return (x[0], x[1]), self.get_risk_array(patients)


def save_output_bytes(mdr_error: list[Any]) -> bytes:
    """The seed's ``save_output`` body, returning the decompressed text it would store."""
    output_buffer = []
    for pair in mdr_error:
        result = [*list(pair[0]), *pair[1]]
        result = [str(x).replace("'", "") for x in result] + ["\n"]
        output_buffer.append(" ".join(result))
    return "".join(output_buffer).encode("utf-8")


def read_gz_text(data: bytes) -> str:
    return gzip.decompress(data).decode("utf-8")


def get_keyval_rows(genotypes: Any) -> dict[int, Any]:
    """Rows of hard calls in the seed's 0/1 triple layout (``input_filter`` of a text row), by index."""
    rows = {}
    for i, g in enumerate(genotypes):
        triples = np.zeros((g.size, 3), dtype=np.int64)
        called = g >= 0
        triples[np.flatnonzero(called), g[called]] = 1
        rows[i] = triples.ravel()
    return rows
