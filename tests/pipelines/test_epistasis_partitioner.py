"""The partitioner: every file pair once, in the seed's order; balanced, deterministic distributions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xtremehub.errors import ConfigError
from xtremehub.pipelines.epistasis.partitioner import get_comb_files, make_distribution, pair_cost


def test_comb_files_are_the_seeds_listoffiles(testdata: Path) -> None:
    listed = (testdata / "mdr" / "simple_10x30x100" / "listoffiles.txt").read_text().split()
    ours = [f"chr0_synth000{a}-chr0_synth000{b}" for a, b in get_comb_files(5)]
    assert ours == listed
    assert get_comb_files(5, 3, 6) == get_comb_files(5)[3:6]


@pytest.mark.parametrize("workers", [1, 2, 3, 7, 40])
def test_distribution_covers_each_tile_once_and_balances(workers: int) -> None:
    rng = np.random.default_rng(workers)
    sizes = rng.integers(1, 500, size=12).tolist()
    tiles = get_comb_files(len(sizes))
    costs = [pair_cost(sizes[a], sizes[b], a == b) for a, b in tiles]
    groups = make_distribution(costs, workers)
    assert len(groups) == workers
    assigned = sorted(t for g in groups for t in g)
    assert assigned == list(range(len(tiles)))
    loads = [sum(costs[t] for t in g) for g in groups]
    assert max(loads) <= sum(costs) / workers + max(costs)  # greedy largest-first bound
    assert make_distribution(costs, workers) == groups  # deterministic: every rank computes the same


def test_bad_partition_arguments() -> None:
    with pytest.raises(ConfigError):
        get_comb_files(0)
    with pytest.raises(ConfigError):
        make_distribution([1, 2], 0)
