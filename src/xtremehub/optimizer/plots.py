"""Optimizer pictures (PNG, matplotlib's Agg canvas, no display): cost-model fit, forecasts, plans.

Example:
    >>> import tempfile, numpy as np
    >>> from xtremehub.optimizer.costmodel import fit_line
    >>> x = np.linspace(1e6, 1e8, 30)
    >>> path = plot_cost_fit(x, 0.1 + 1e-8 * x, fit_line(x, 0.1 + 1e-8 * x), tempfile.mkdtemp() + "/fit.png")
    >>> path.endswith("fit.png")
    True
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from xtremehub.optimizer.costmodel import LineFit

__all__ = ["new_figure", "plot_cost_fit", "plot_forecast", "save"]


def new_figure(width: float = 7.0, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save(fig: Any, path: str | os.PathLike[str]) -> str:
    out = Path(path).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=110)
    return str(out)


def plot_cost_fit(
    input_bytes: npt.NDArray[np.float64], duration: npt.NDArray[np.float64], fit: LineFit, path: str | os.PathLike[str]
) -> str:
    """Calls as dots (seconds vs input MB), the fitted line and its prediction band."""
    fig = new_figure()
    ax = fig.add_subplot()
    ax.scatter(input_bytes / 1e6, duration, s=10, alpha=0.7, label="calls")
    xs = np.linspace(0, float(input_bytes.max()) * 1.05, 50)
    mean = np.array([fit.predict(v).mean for v in xs])
    ax.plot(xs / 1e6, mean, color="C1", label=f"fit ({fit.n_runs} runs)")
    ax.fill_between(
        xs / 1e6, np.maximum(0, mean - fit.half_width), mean + fit.half_width, color="C1", alpha=0.2,
        label=f"{fit.coverage:.0%} interval",
    )  # fmt: skip
    ax.set_xlabel("input per call (MB)")
    ax.set_ylabel(f"{fit.target} (s)")
    ax.legend()
    return save(fig, path)


def plot_forecast(
    actual: npt.NDArray[np.float64],
    forecasts: Mapping[str, npt.NDArray[np.float64]],
    path: str | os.PathLike[str],
    *,
    start: int = 0,
    title: str = "",
    workers: Mapping[str, Sequence[float]] | None = None,
) -> str:
    """Actual load and forecasts per window (optionally with worker counts below)."""
    fig = new_figure(9, 5.5 if workers else 3.8)
    ax = fig.add_subplot(2 if workers else 1, 1, 1)
    t = np.arange(start, start + len(actual))
    ax.plot(t, actual, color="black", lw=1.2, label="actual")
    for i, (name, values) in enumerate(forecasts.items()):
        ax.plot(t, values, lw=1, color=f"C{i}", label=name)
    ax.set_ylabel("tasks per window")
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=4)
    if workers:
        ax2 = fig.add_subplot(2, 1, 2, sharex=ax)
        for i, (name, w) in enumerate(workers.items()):
            ax2.step(t, np.asarray(w)[: len(t)], where="post", lw=1, color=f"C{i}", label=name)
        ax2.set_ylabel("workers")
        ax2.set_xlabel("window")
        ax2.legend(fontsize=8, ncol=4)
    else:
        ax.set_xlabel("window")
    return save(fig, path)
