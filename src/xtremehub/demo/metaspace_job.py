"""The demo's metabolomics job: METASPACE-style annotation of a generated dataset with planted molecules.

Example:
    >>> import tempfile
    >>> from xtremehub.config import Settings
    >>> report = run_metaspace_demo(Settings(home=tempfile.mkdtemp()), width=10, height=8, workers=1)
    >>> report.ok, report.summary().splitlines()[0]
    (True, 'XtremeHub demo: metabolite annotation (METASPACE method, analysis version 1)')
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from xtremehub.compute import FunctionExecutor
from xtremehub.config import Settings
from xtremehub.demo.catalog_link import demo_catalog
from xtremehub.pipelines.metabolomics import Annotation, annotate
from xtremehub.pipelines.metabolomics.outputs import write_outputs
from xtremehub.pipelines.metabolomics.synthetic import PlantedDataset, random_formulas, write_planted_dataset

__all__ = ["MetaspaceReport", "run_metaspace_demo"]


@dataclass
class MetaspaceReport:
    dataset: PlantedDataset
    database_size: int
    result: Annotation
    out_dir: Path
    images: int
    seconds: float
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    def summary(self, top: int = 8) -> str:
        table = self.result.table
        lines = [
            "XtremeHub demo: metabolite annotation (METASPACE method, analysis version 1)",
            f"  dataset      {self.dataset.imzml_url} ({self.dataset.n_spectra} spectra, "
            f"{self.dataset.ibd_size / 1e6:.1f} MB .ibd, {len(self.dataset.planted)} planted molecules)",
            f"  database     {self.database_size} formulas x {', '.join(self.result.config.adducts)}, "
            f"{self.result.config.decoy_sample_size} decoy adducts each, ± {self.result.config.ppm:g} ppm",
            f"  annotated    in {self.seconds:.2f}s: {int((table.fdr <= 0.1).sum())} at FDR <= 10% "
            f"(.ibd read {self.result.ibd_bytes_read / max(self.result.ibd_size, 1):.0%})",
        ]
        for row in table.head(top).itertuples():
            planted = "planted" if row.formula in self.dataset.planted else ""
            scores = f"MSM {row.msm:.3f}  FDR {row.fdr:4.0%}"
            lines.append(f"    {row.formula:<14} {row.adduct:<4} m/z {row.mz:9.4f}  {scores}  {planted}")
        lines.append(f"  ion images   {self.images} PNGs under {self.out_dir}")
        lines += [f"  check        {name}: {'OK' if ok else 'FAILED'}" for name, ok in self.checks.items()]
        return "\n".join(lines)


def run_metaspace_demo(
    settings: Settings,
    *,
    width: int = 24,
    height: int = 16,
    formulas: int = 40,
    planted: int = 5,
    workers: int | None = None,
    progress: bool | None = None,
) -> MetaspaceReport:
    """Generate a dataset with ``planted`` of ``formulas`` molecules, annotate it, write the results."""
    home = Path(settings.home).expanduser() / "sample" / "metaspace"
    database = random_formulas(formulas, seed=3)
    chosen = database[:: max(1, formulas // planted)][:planted]
    dataset = write_planted_dataset(str(home / "planted"), chosen, database, width=width, height=height, seed=1)
    t0 = time.perf_counter()
    with FunctionExecutor(workers=workers, settings=settings, progress=progress) as fexec:
        result = annotate(dataset.imzml_url, database, adducts=["+H", "+Na"], executor=fexec, progress=progress)
    seconds = time.perf_counter() - t0
    out_dir = home / "results"
    with demo_catalog(settings) as cat:  # the annotation run goes into the demo's catalog
        written = write_outputs(
            result, str(out_dir), png_fdr=0.1, settings=settings, catalog=cat, source=dataset.imzml_url, owner="demo"
        )
    table = result.table
    found = set(table[table.fdr <= 0.1].formula)
    checks = {
        "every planted molecule found at FDR <= 10%": set(chosen) <= set(table[table.fdr <= 0.1].formula),
        "no other molecule at FDR <= 10%": found <= set(chosen),
        "table and ion images written": len(written) > 3,
    }
    images = sum(1 for w in written if w.endswith(".png"))
    return MetaspaceReport(dataset, len(database), result, out_dir, images, seconds, checks)
