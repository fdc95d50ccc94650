"""Writing an annotation: table (CSV and Parquet), ion image PNGs and a summary, through storage.

Files under ``out_url`` (a local folder, ``s3://bucket/prefix``, ``mem://...``):

* ``annotations.csv`` and ``annotations.parquet``: one row per target ion with MSM > 0
  (list columns in the CSV are ``;``-separated);
* ``images/<formula><adduct>_<k>.png``: the isotope images (k = 0..n_peaks-1) of every
  annotation with FDR <= ``png_fdr``, as METASPACE stores four per annotation;
* ``summary.json``: settings, notes, time per stage, ``.ibd`` bytes read.

Example:
    >>> import tempfile
    >>> from xtremehub.pipelines.metabolomics.synthetic import write_planted_dataset
    >>> from xtremehub.pipelines.metabolomics.annotate import annotate
    >>> ds = write_planted_dataset(tempfile.mkdtemp() + "/d", ["C6H12O6"], ["C6H12O6", "C5H5N5"], width=6, height=5)
    >>> result = annotate(ds.imzml_url, ["C6H12O6", "C5H5N5"], adducts=["+H"], progress=False)
    >>> written = write_outputs(result, "mem://out/run1", png_fdr=0.5)
    >>> sorted(w.rpartition("/")[2] for w in written)[:4]
    ['C6H12O6+H_0.png', 'C6H12O6+H_1.png', 'C6H12O6+H_2.png', 'C6H12O6+H_3.png']
"""

from __future__ import annotations

import dataclasses
import getpass
import io
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from xtremehub import storage
from xtremehub.config import Settings
from xtremehub.pipelines.metabolomics.annotate import Annotation

__all__ = ["png_bytes", "write_outputs"]

_LIST_COLUMNS = ("total_iso_ints", "max_iso_ints", "theo_mz", "theo_ints")


def png_bytes(image: np.ndarray[Any, Any], cmap: str = "viridis") -> bytes:
    """An image as PNG bytes (colour-mapped, scaled to its own maximum)."""
    from matplotlib.image import imsave

    buf = io.BytesIO()
    imsave(buf, image, cmap=cmap, vmin=0, vmax=float(image.max()) or 1.0, format="png")
    return buf.getvalue()


def _csv(table: pd.DataFrame) -> bytes:
    flat = table.copy()
    for column in _LIST_COLUMNS:
        flat[column] = flat[column].map(lambda v: ";".join(f"{x:.6g}" for x in v))
    text: str = flat.to_csv(index=False)
    return text.encode()


def write_outputs(
    result: Annotation,
    out_url: str,
    *,
    png_fdr: float = 0.1,
    settings: Settings | None = None,
    catalog: Any = None,
    source: str | None = None,
    owner: str | None = None,
) -> list[str]:
    """Write the table, images and summary under ``out_url``; returns the URLs written.

    With a ``catalog`` (:class:`~xtremehub.catalog.api.CatalogAPI`) the annotation is recorded as
    a job reading ``source`` (the imzML) and writing the tables and summary (``derived`` datasets).
    """
    started = datetime.now(tz=UTC)
    base = out_url.rstrip("/")
    written = []
    storage.put(f"{base}/annotations.csv", _csv(result.table), settings=settings)
    buf = io.BytesIO()
    result.table.to_parquet(buf, index=False)
    storage.put(f"{base}/annotations.parquet", buf.getvalue(), settings=settings)
    written += [f"{base}/annotations.csv", f"{base}/annotations.parquet"]
    for row in np.flatnonzero(result.table.fdr.to_numpy() <= png_fdr):
        formula, adduct = result.table.formula.iloc[row], result.table.adduct.iloc[row]
        for k, mz in enumerate(result.table.theo_mz.iloc[row]):
            if mz > 0:
                url = f"{base}/images/{formula}{adduct}_{k}.png"
                storage.put(url, png_bytes(result.ion_image(int(row), k)), settings=settings)
                written.append(url)
    summary = {
        "config": dataclasses.asdict(result.config),
        "annotations": len(result.table),
        "at_fdr": {str(level): int((result.table.fdr <= level).sum()) for level in (0.05, 0.1, 0.2, 0.5)},
        "notes": result.notes,
        "timings_s": result.timings,
        "ibd_bytes_read": result.ibd_bytes_read,
        "ibd_size": result.ibd_size,
    }
    storage.put(f"{base}/summary.json", json.dumps(summary, indent=2).encode(), settings=settings)
    written.append(f"{base}/summary.json")
    if catalog is not None:
        from xtremehub.catalog.lineage import record_run

        tables = [f"{base}/annotations.csv", f"{base}/annotations.parquet", f"{base}/summary.json"]
        record_run(
            catalog, "xtremehub.pipelines.metabolomics:annotate", inputs=[source] if source else [], outputs=tables,
            owner=owner or getpass.getuser(), started=started, parameters=dataclasses.asdict(result.config),
            telemetry={"annotations": summary["annotations"], "ibd_bytes_read": result.ibd_bytes_read,
                       "images": len(written) - len(tables)},
            settings=settings,
        )  # fmt: skip
    return written
