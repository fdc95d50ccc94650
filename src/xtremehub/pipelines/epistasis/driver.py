"""Drivers: one MDR run over genotype files, on the executor (local, Ray, Dask, Lithops) or MPI.

Both drivers plan the same tiles (file pairs, see :mod:`.partitioner`), run them with
:func:`run_tiles` and merge with :func:`finalize`, so their output files are identical whatever the
worker count. Outputs under ``out``:

* ``genotypes/<file>.npz``: each file's hard calls, parsed once per run (:func:`prepare_files`)
* ``pairs/MDR_<file1>-<file2>.gz``: seed-style text, one line per pair (``storer.save_output``)
* ``parts/<file1>-<file2>.parquet``: the tile's pairs; its presence marks the tile done, so a rerun
  after a crash computes only the missing tiles
* ``pairs.parquet``, ``top_pairs.tsv``, ``interactions.png``, ``summary.json``: the merged results

Example:
    >>> from xtremehub.pipelines.epistasis.driver import file_stem
    >>> file_stem("s3://bucket/cohort/chr0_synth0001.gz")
    'chr0_synth0001'
"""

from __future__ import annotations

import dataclasses
import fnmatch
import io
import json
import logging
import posixpath
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xtremehub import storage
from xtremehub.compute import FunctionExecutor
from xtremehub.config import Settings
from xtremehub.connectors import as_mapper, starmap
from xtremehub.errors import ComputeError, ConfigError, MalformedRecord, ObjectNotFound
from xtremehub.pipelines.epistasis.config import MDRConfig
from xtremehub.pipelines.epistasis.learner import Cohort, apply_mdr
from xtremehub.pipelines.epistasis.loader import GenotypeBlock, read_labels, read_sample
from xtremehub.pipelines.epistasis.partitioner import get_comb_files, get_mpicomm, make_distribution, pair_cost
from xtremehub.pipelines.epistasis.plink import is_plink, read_plink, read_plink_labels
from xtremehub.pipelines.epistasis.storer import (
    categorical,
    pairs_table,
    plot_interactions,
    read_table,
    save_output,
    top_pairs,
    top_text,
    write_table,
)
from xtremehub.storage.access import PROCESS_DEFAULTS, StoreAccess

__all__ = [
    "RunPlan",
    "RunReport",
    "expand_genotypes",
    "finalize",
    "plan_run",
    "prepare_files",
    "run_mdr",
    "run_mdr_mpi",
    "run_tiles",
]

log = logging.getLogger(__name__)

_SUFFIXES = (".gz", ".gen", ".txt", ".vcf", ".bed")


def file_stem(url: str) -> str:
    name = posixpath.basename(str(url).rstrip("/"))
    while name.endswith(_SUFFIXES):
        name = name.rsplit(".", 1)[0]
    return name


def expand_genotypes(patterns: Sequence[str], settings: Settings | None = None) -> list[str]:
    """URLs of the genotype files: each pattern a URL, or a glob in its last part (``dir/*.gz``)."""
    out: list[str] = []
    for item in patterns:
        pattern = str(item)
        head, tail = posixpath.split(pattern)
        if not any(ch in tail for ch in "*?["):
            out.append(pattern)
            continue
        found = sorted(
            info.url
            for info in storage.list(head + "/", settings=settings)
            if fnmatch.fnmatchcase(posixpath.basename(info.url), tail)
        )
        if not found:
            raise ObjectNotFound(pattern, "no genotype file matches")
        out.extend(found)
    return out


@dataclass(frozen=True)
class RunPlan:
    """Everything a worker needs: files, labels, settings of the run and its tiles."""

    files: tuple[str, ...]
    labels_url: str
    labels: np.ndarray[Any, np.dtype[np.int8]]
    out: str
    config: MDRConfig
    tiles: tuple[tuple[int, int], ...]
    costs: tuple[int, ...]
    names: tuple[str, ...] = field(default=())
    sizes: tuple[int, ...] = field(default=())
    #: the run's store settings; pickled to workers without S3 credentials (see StoreAccess)
    access: StoreAccess = field(default=PROCESS_DEFAULTS)

    def settings_for(self, url: str) -> Settings:
        """The settings to read or write ``url`` of this run with, in the calling process."""
        return self.access.settings_for(url)

    def tile_name(self, tile: int) -> str:
        a, b = self.tiles[tile]
        return f"{self.names[a]}-{self.names[b]}"

    def part_url(self, tile: int) -> str:
        return f"{self.out}/parts/{self.tile_name(tile)}.parquet"

    def text_url(self, tile: int) -> str:
        return f"{self.out}/pairs/MDR_{self.tile_name(tile)}.gz"

    def calls_url(self, index: int) -> str:
        """The file's hard calls, parsed once per run (``int8[snps, patients]`` and keys, ``.npz``)."""
        return f"{self.out}/genotypes/{self.names[index]}.npz"


def plan_run(
    genotypes: Sequence[str], labels: str, out: str, config: MDRConfig, settings: Settings | None = None
) -> RunPlan:
    """Read the labels, size the genotype files and list the tiles."""
    files = expand_genotypes(genotypes, settings)
    if not files:
        raise ConfigError("no genotype files given")
    names = tuple(file_stem(f) for f in files)
    if len(set(names)) != len(names):
        raise ConfigError(f"genotype file names must differ once suffixes are removed: {sorted(names)}")
    if str(labels).endswith(".fam"):
        lab = read_plink_labels(str(labels), settings=settings)
    else:
        lab = read_labels(storage.get(labels, settings=settings), str(labels))
    Cohort.build(lab, config)  # too few patients for the folds: fail before any work starts
    sizes = [storage.head(f, settings=settings).size for f in files]
    tiles = tuple(get_comb_files(len(files)))
    costs = tuple(max(1, pair_cost(sizes[a] >> 10, sizes[b] >> 10, a == b)) for a, b in tiles)
    out_url = str(out).rstrip("/")
    access = StoreAccess(settings)
    plan = RunPlan(tuple(files), str(labels), lab, out_url, config, tiles, costs, names, tuple(sizes), access)
    _claim_output(plan, sizes)
    return plan


def _claim_output(plan: RunPlan, sizes: Sequence[int]) -> None:
    """Write ``run.json`` under ``out``, or check that the one there describes this same run: finished
    tiles are only reused by a rerun of the same inputs and settings."""
    manifest = {
        "config": dataclasses.asdict(plan.config),
        "files": [{"url": f, "size": n} for f, n in zip(plan.files, sizes, strict=True)],
        "labels": plan.labels_url,
        "patients": int(plan.labels.size),
    }
    text = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    url = f"{plan.out}/run.json"
    settings = plan.settings_for(url)
    if storage.exists(url, settings=settings):
        if storage.get(url, settings=settings) != text:
            raise ConfigError(f"{url} describes another run (inputs or settings differ): choose another output")
        return
    storage.put(url, text, settings=settings)


@dataclass
class TileStats:
    """What one worker did: tiles computed and skipped, pairs, seconds spent reading/learning/writing."""

    computed: int = 0
    skipped: int = 0
    pairs: int = 0
    read_s: float = 0.0
    mdr_s: float = 0.0
    write_s: float = 0.0

    def add(self, other: TileStats) -> None:
        for name in ("computed", "skipped", "pairs", "read_s", "mdr_s", "write_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def run_tiles(plan: RunPlan, tile_ids: Sequence[int]) -> TileStats:
    """Compute the tiles ``tile_ids`` not done yet; the worker function of both drivers."""
    stats = TileStats()
    cohort = Cohort.build(plan.labels, plan.config)
    cache: dict[int, GenotypeBlock] = {}

    def load(index: int) -> GenotypeBlock:
        if index not in cache:
            if len(cache) >= 3:
                cache.pop(next(iter(cache)))
            t0 = time.perf_counter()
            cache[index] = _read_genotypes(plan, index, cohort.n_patients)
            stats.read_s += time.perf_counter() - t0
        return cache[index]

    for tile in tile_ids:
        if storage.exists(plan.part_url(tile), settings=plan.settings_for(plan.part_url(tile))):
            stats.skipped += 1
            continue
        a, b = plan.tiles[tile]
        first, second = load(a), load(b)
        t0 = time.perf_counter()
        res = apply_mdr(first.genotypes, second.genotypes, cohort, triangle=a == b, block_snps=plan.config.block_snps)
        t1 = time.perf_counter()
        tol = plan.config.text_tolerance
        keys1, keys2 = list(first.keys), list(second.keys)
        rows1, rows2 = res.first.tolist(), res.second.tolist()
        text_url = plan.text_url(tile)
        first_keys, second_keys = [keys1[i] for i in rows1], [keys2[j] for j in rows2]
        save_output(text_url, first_keys, second_keys, res.errors, tolerance=tol, settings=plan.settings_for(text_url))
        columns: dict[str, Any] = {
            "file1": categorical(np.zeros(len(res), np.int32), [plan.names[a]]),
            "row1": res.first.astype(np.int32),
            "snp1": categorical(res.first, keys1),
            "file2": categorical(np.zeros(len(res), np.int32), [plan.names[b]]),
            "row2": res.second.astype(np.int32),
            "snp2": categorical(res.second, keys2),
        }
        for f in range(cohort.cv_sets):
            columns[f"fold{f + 1}"] = res.errors[:, f]
        columns["mean"] = res.errors.mean(axis=1) if len(res) else np.zeros(0)
        table = pairs_table(columns).replace_schema_metadata({"rows1": str(first.n_snps), "rows2": str(second.n_snps)})
        part_url = plan.part_url(tile)
        write_table(part_url, table, settings=plan.settings_for(part_url))  # last: marks the tile done
        stats.write_s += time.perf_counter() - t1
        stats.mdr_s += t1 - t0
        stats.computed += 1
        stats.pairs += len(res)
        log.info("tile %s: %d pairs in %.3fs", plan.tile_name(tile), len(res), t1 - t0)
    return stats


def _read_genotypes(plan: RunPlan, index: int, n_patients: int) -> GenotypeBlock:
    """The file's hard calls: from the run's binary copy if there is one, else parsed (and copied)."""
    url, cached = plan.files[index], plan.calls_url(index)
    if storage.exists(cached, settings=plan.settings_for(cached)):
        with np.load(io.BytesIO(storage.get(cached, settings=plan.settings_for(cached))), allow_pickle=False) as npz:
            return GenotypeBlock(url, tuple(npz["keys"].tolist()), npz["genotypes"])
    if is_plink(url):
        block = read_plink(url, settings=plan.settings_for(url))
        if block.genotypes.shape[1] != n_patients:
            detail = f"{block.genotypes.shape[1]} patients in the .fam but {plan.labels_url} lists {n_patients}"
            raise MalformedRecord(url, 0, detail, "record")
    else:
        block = read_sample(
            storage.get(url, settings=plan.settings_for(url)),
            url,
            n_patients=n_patients,
            labels_url=plan.labels_url,
            call_threshold=plan.config.call_threshold,
            prob_tolerance=plan.config.prob_tolerance,
        )
    buf = io.BytesIO()
    np.savez(buf, genotypes=block.genotypes, keys=np.array(block.keys, dtype=str))
    storage.put(cached, buf.getvalue(), settings=plan.settings_for(cached))
    return block


def prepare_files(plan: RunPlan, indices: Sequence[int]) -> TileStats:
    """Parse the genotype files ``indices`` once into the run's binary copies (``genotypes/*.npz``):
    afterwards every tile reads 1 byte per call instead of re-parsing ~9 bytes of text per probability."""
    stats = TileStats()
    t0 = time.perf_counter()
    for index in indices:
        if not storage.exists(plan.calls_url(index), settings=plan.settings_for(plan.calls_url(index))):
            _read_genotypes(plan, index, int(plan.labels.size))
    stats.read_s = time.perf_counter() - t0
    return stats


def _file_groups(plan: RunPlan, workers: int) -> list[list[int]]:
    return make_distribution([max(1, n >> 10) for n in plan.sizes], workers)


@dataclass(frozen=True)
class RunReport:
    """The outcome of a run: pair and tile counts, timings, the top pairs and the output URLs."""

    pairs: int
    tiles_computed: int
    tiles_skipped: int
    workers: int
    seconds: float
    stats: TileStats
    top: list[dict[str, Any]]
    outputs: dict[str, str]

    @property
    def pairs_per_second(self) -> float:
        return self.stats.pairs / self.seconds if self.seconds > 0 else 0.0


def finalize(plan: RunPlan, stats: TileStats, workers: int, seconds: float) -> RunReport:
    """Merge the tiles' parts into ``pairs.parquet``, ``top_pairs.tsv``, ``interactions.png`` and
    ``summary.json`` (contents independent of how the tiles were distributed)."""
    import pyarrow as pa

    tables = [
        read_table(plan.part_url(t), settings=plan.settings_for(plan.part_url(t))) for t in range(len(plan.tiles))
    ]
    rows = [0] * len(plan.files)
    for (a, b), tab in zip(plan.tiles, tables, strict=True):
        meta = tab.schema.metadata or {}
        rows[a], rows[b] = int(meta[b"rows1"]), int(meta[b"rows2"])
    merged = pa.concat_tables([t.replace_schema_metadata(None) for t in tables])
    outputs = {
        "pairs": f"{plan.out}/pairs.parquet",
        "top": f"{plan.out}/top_pairs.tsv",
        "plot": f"{plan.out}/interactions.png",
        "summary": f"{plan.out}/summary.json",
    }
    settings = plan.settings_for(plan.out + "/")
    write_table(outputs["pairs"], merged, settings=settings)
    top = top_pairs(merged, plan.config.top_k)
    storage.put(outputs["top"], top_text(top).encode(), settings=settings)
    title = f"MDR ({plan.config.mode} mode): {merged.num_rows:,} pairs, {sum(rows):,} SNPs"
    offsets = np.concatenate([[0], np.cumsum(rows)[:-1]]).astype(np.int64)
    first = [offsets[a] + t["row1"].to_numpy().astype(np.int64) for (a, _), t in zip(plan.tiles, tables, strict=True)]
    second = [offsets[b] + t["row2"].to_numpy().astype(np.int64) for (_, b), t in zip(plan.tiles, tables, strict=True)]
    top_rows = top.to_pylist()
    best = top_rows[0] if top_rows else {}
    label = f"{best['file1']}:{best['snp1']} x {best['file2']}:{best['snp2']}" if best else ""
    png = plot_interactions(
        np.concatenate(first), np.concatenate(second), 1 - merged["mean"].to_numpy(), rows, label, title
    )
    storage.put(outputs["plot"], png, settings=settings)
    top_rows = top.to_pylist()
    summary = {
        "mode": plan.config.mode,
        "cv_sets": plan.config.cv_sets,
        "patients": int(plan.labels.size),
        "cases": int(plan.labels.sum()),
        "files": [{"name": n, "snps": r} for n, r in zip(plan.names, rows, strict=True)],
        "pairs": merged.num_rows,
        "top": top_rows,
    }
    storage.put(outputs["summary"], (json.dumps(summary, indent=1) + "\n").encode(), settings=settings)
    return RunReport(merged.num_rows, stats.computed, stats.skipped, workers, seconds, stats, top_rows, outputs)


def run_mdr(
    genotypes: Sequence[str],
    labels: str,
    out: str,
    *,
    config: MDRConfig | None = None,
    tasks: int = 1,
    executor: FunctionExecutor | None = None,
    backend: str = "local",
    settings: Settings | None = None,
) -> RunReport:
    """Run MDR on the executor: the tiles split over ``tasks`` calls of :func:`run_tiles`.

    ``executor`` (optional) is used as given; else a :class:`~xtremehub.compute.FunctionExecutor`
    on ``backend`` with ``tasks`` workers is made and closed.
    """
    t0 = time.perf_counter()
    plan = plan_run(genotypes, labels, out, config or MDRConfig(), settings)
    groups = [g for g in make_distribution(plan.costs, tasks) if g]
    file_groups = [g for g in _file_groups(plan, tasks) if g]
    fexec = executor or FunctionExecutor(backend, workers=tasks, settings=settings)
    try:
        mapper = as_mapper(fexec)
        prepared = starmap(mapper, prepare_files, [(plan, g) for g in file_groups])
        results = starmap(mapper, run_tiles, [(plan, g) for g in groups])
    finally:
        if executor is None:
            fexec.close()
    total = TileStats()
    for r in [*prepared, *results]:
        total.add(r)
    return finalize(plan, total, tasks, time.perf_counter() - t0)


def run_mdr_mpi(
    genotypes: Sequence[str],
    labels: str,
    out: str,
    *,
    config: MDRConfig | None = None,
    settings: Settings | None = None,
) -> RunReport | None:
    """Run MDR on every rank of ``MPI.COMM_WORLD`` (launch with ``mpiexec -n N``); rank 0 merges and
    returns the report, other ranks return ``None``. A failure on any rank fails rank 0."""
    comm, rank, size = get_mpicomm()
    t0 = time.perf_counter()
    plan: RunPlan | str | None = None
    if rank == 0:
        try:
            plan = plan_run(genotypes, labels, out, config or MDRConfig(), settings)
        except Exception as exc:
            plan = f"{type(exc).__name__}: {exc}"
    plan = comm.bcast(plan, root=0)
    if isinstance(plan, str):
        if rank == 0:
            raise ComputeError(f"planning the MDR run failed: {plan}")
        return None
    outcomes: list[TileStats | str] = []
    for phase in (prepare_files, run_tiles):
        work = _file_groups(plan, size)[rank] if phase is prepare_files else make_distribution(plan.costs, size)[rank]
        try:
            outcome: TileStats | str = phase(plan, work)
        except Exception as exc:
            outcome = f"rank {rank}: {type(exc).__name__}: {exc}"
        # every rank's files are parsed before any tile starts; a failure stops all ranks here
        gathered = comm.allgather(outcome)
        failures = [o for o in gathered if isinstance(o, str)]
        if failures:
            if rank == 0:
                raise ComputeError("; ".join(failures))
            return None
        outcomes.extend(gathered)
    if rank != 0:
        return None
    total = TileStats()
    for o in outcomes:
        if isinstance(o, TileStats):
            total.add(o)
    return finalize(plan, total, size, time.perf_counter() - t0)
