"""Iterative k-means on functions: shared centroids updated atomically, a barrier per iteration.

Local, Ray and Dask give the same centroids, bit for bit, as a sequential numpy k-means with the
same initial centroids (the points have integer coordinates, so every sum is exact whatever the
order in which the partitions arrive).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import cloudpickle
import numpy as np
import pytest

from xtremehub import FunctionExecutor, state

K, PARTS, ITERATIONS = 4, 2, 8


def points(seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [600, 50], [100, 700], [800, 800]])
    return np.concatenate([c + rng.integers(-150, 150, size=(300, 2)) for c in centres]).astype(np.float64)


def sequential_kmeans(x: np.ndarray, init: np.ndarray, iterations: int) -> np.ndarray:
    centroids = init.copy()
    for _ in range(iterations):
        labels = np.argmin(((x[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
        for j in range(len(centroids)):
            if (labels == j).any():
                centroids[j] = x[labels == j].sum(0) / (labels == j).sum()
    return centroids


@state.shared
class Centroids:
    """The current centroids and this iteration's partial sums; every method runs atomically."""

    def __init__(self, init: np.ndarray) -> None:
        self.centroids = np.array(init, dtype=np.float64)
        self.sums = np.zeros_like(self.centroids)
        self.counts = np.zeros(len(self.centroids), dtype=np.int64)
        self.iterations = 0

    def get(self) -> np.ndarray:
        return self.centroids

    def accumulate(self, sums: np.ndarray, counts: np.ndarray) -> None:
        self.sums += sums
        self.counts += counts

    def finish(self) -> None:
        """Run once per iteration (the barrier's action): new centroids from the sums."""
        moved = self.counts > 0
        self.centroids[moved] = self.sums[moved] / self.counts[moved, None]
        self.sums[:] = 0
        self.counts[:] = 0
        self.iterations += 1


def kmeans_task(tag: str, address: str) -> Callable[[int], int]:
    """The function each of the ``PARTS`` calls runs (a closure: it travels to any backend by value)."""
    centroids = Centroids(f"{tag}/centroids", address=address)
    barrier = state.Barrier(f"{tag}/barrier", PARTS, action=centroids.finish, timeout=60, address=address)

    def task(part: int) -> int:
        x = points()[part::PARTS]
        for _ in range(ITERATIONS):
            c = centroids.get()
            labels = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
            sums = np.zeros_like(c)
            np.add.at(sums, labels, x)
            centroids.accumulate(sums, np.bincount(labels, minlength=len(c)))
            barrier.wait()  # the last to arrive runs finish(); then all read the new centroids
        return part

    return task


def run_kmeans(fexec: FunctionExecutor, tag: str, address: str) -> np.ndarray:
    init = points()[[0, 1, 2, 3]]
    Centroids(f"{tag}/centroids", init, address=address)  # created with the initial centroids
    assert sorted(
        fexec.get_result(fexec.map(kmeans_task(tag, address), range(PARTS), chunksize=1, timeout=300))
    ) == list(range(PARTS))
    shared = Centroids(f"{tag}/centroids", address=address)
    return np.asarray(shared.get())


@pytest.fixture(scope="module")
def expected() -> np.ndarray:
    return sequential_kmeans(points(), points()[[0, 1, 2, 3]], ITERATIONS)


def test_kmeans_local(address: str, expected: np.ndarray) -> None:
    with FunctionExecutor("local", workers=PARTS) as fexec:
        got = run_kmeans(fexec, "kmeans-local", address)
    assert np.array_equal(got, expected)
    assert not np.array_equal(got, points()[[0, 1, 2, 3]])  # it moved


@pytest.mark.ray
def test_kmeans_ray(address: str, expected: np.ndarray, ray_engine: Any) -> None:
    # Ray's workers cannot import this test module: its functions travel by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with FunctionExecutor("ray") as fexec:
            assert np.array_equal(run_kmeans(fexec, "kmeans-ray", address), expected)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.mark.dask
def test_kmeans_dask(address: str, expected: np.ndarray, dask_client: Any) -> None:
    with FunctionExecutor("dask", client=dask_client) as fexec:
        assert np.array_equal(run_kmeans(fexec, "kmeans-dask", address), expected)
