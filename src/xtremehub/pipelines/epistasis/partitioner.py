"""Partitioner: the work of a run as tiles of file pairs, spread evenly over ranks or tasks.

Every unordered SNP pair is evaluated exactly once: a tile is a pair of genotype files ``(a, b)``
with ``a <= b`` (``get_comb_files``, the seed's ``listoffiles.txt``); a tile ``(a, a)`` evaluates the
pairs ``i < j`` within the file, a tile ``(a, b)`` every row of ``a`` with every row of ``b``.
``make_distribution`` assigns tiles to workers by estimated cost (longest first onto the least
loaded worker), deterministically, so any worker count computes the same tiles.

Example:
    >>> from xtremehub.pipelines.epistasis.partitioner import get_comb_files, make_distribution
    >>> get_comb_files(3)
    [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    >>> make_distribution([4, 1, 1, 3, 2, 1], 2)
    [[0, 1, 2], [3, 4, 5]]
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from typing import Any

from xtremehub.errors import ConfigError, MissingDependency

__all__ = ["get_comb_files", "get_mpicomm", "make_distribution", "pair_cost"]


def get_comb_files(n_files: int, first: int = 0, last: int | None = None) -> list[tuple[int, int]]:
    """File pairs ``(a, b)``, ``a <= b``, in the seed's ``listoffiles.txt`` order, lines ``[first, last)``."""
    if n_files < 1:
        raise ConfigError("an MDR run needs at least one genotype file")
    return list(itertools.combinations_with_replacement(range(n_files), 2))[first:last]


def pair_cost(size_a: int, size_b: int, same: bool) -> int:
    """Estimated work of a tile from its files' sizes (pairs grow with the product of row counts).

    >>> pair_cost(10, 10, True), pair_cost(10, 10, False)
    (45, 100)
    """
    return size_a * (size_a - 1) // 2 if same else size_a * size_b


def make_distribution(costs: Sequence[int], n_workers: int) -> list[list[int]]:
    """Tile indices per worker, balanced by ``costs``; each worker's list in ascending order.

    Largest tile first onto the least loaded worker (ties: lowest worker), so the result depends only
    on the costs and the worker count.
    """
    if n_workers < 1:
        raise ConfigError(f"need at least one worker, not {n_workers}")
    heap = [(0, w) for w in range(n_workers)]
    out: list[list[int]] = [[] for _ in range(n_workers)]
    for tile in sorted(range(len(costs)), key=lambda t: (-costs[t], t)):
        load, w = heapq.heappop(heap)
        out[w].append(tile)
        heapq.heappush(heap, (load + costs[tile], w))
    return [sorted(ts) for ts in out]


def get_mpicomm() -> tuple[Any, int, int]:
    """``(comm, rank, size)`` of ``MPI.COMM_WORLD`` (needs ``mpi4py``: the ``hpc`` extra)."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise MissingDependency("the MPI driver needs mpi4py: pip install 'xtremehub[hpc]'") from exc
    comm = MPI.COMM_WORLD
    return comm, int(comm.Get_rank()), int(comm.Get_size())
