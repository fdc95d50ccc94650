"""Synthetic telemetry for the optimizer tests: calls whose costs follow known lines (imported, not a conftest)."""

from __future__ import annotations

import numpy as np

from xtremehub.compute.telemetry import TaskTelemetry


def synthetic_calls(
    n: int,
    *,
    intercept: float = 0.2,
    per_byte: float = 2e-8,
    rss0: float = 80e6,
    rss_per_byte: float = 1.5,
    noise: float = 0.02,
    seed: int = 0,
    job: str = "syn-M000",
    sizes: np.ndarray | None = None,
    rel_noise: float = 0.0,
) -> tuple[list[TaskTelemetry], list[int]]:
    """``n`` calls: duration = intercept + per_byte * bytes (+ noise), peak_rss = rss0 + rss_per_byte * bytes.

    ``rel_noise``: the duration's coefficient of variation from a mean-one log-normal factor
    (calls of equal size taking unequal time), applied before the additive ``noise``.
    """
    rng = np.random.default_rng(seed)
    x = sizes if sizes is not None else rng.uniform(1e6, 2e8, n)
    dur = (intercept + per_byte * x) * lognormal_factor(rng, rel_noise, n) + rng.normal(0, noise, n)
    rss = rss0 + rss_per_byte * x + rng.normal(0, 2e6, n)
    rows = [
        TaskTelemetry(
            job_id=job,
            call_id=i,
            backend="local",
            worker=f"local-{i % 2}",
            status="success",
            submit=1000.0,
            start=1000.0 + i,
            end=1000.0 + i + float(dur[i]),
            cpu_user=float(dur[i]) * 0.9,
            peak_rss=int(rss[i]),
            bytes_read=int(x[i]),
        )
        for i in range(n)
    ]
    return rows, [int(v) for v in x]


def lognormal_factor(rng: np.random.Generator, cv: float, n: int) -> np.ndarray:
    """``n`` log-normal factors of mean 1 and coefficient of variation ``cv`` (ones for ``cv = 0``)."""
    sigma = float(np.sqrt(np.log1p(cv**2)))
    return rng.lognormal(-(sigma**2) / 2, sigma, n)
