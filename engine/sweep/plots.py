"""The sweep's charts, drawn with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from engine.sweep.spec import SweepSpec  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def write_charts(spec: SweepSpec, table: pd.DataFrame, matrix: pd.DataFrame, best: str,
                 holdout: pd.Series, out: Path) -> dict[str, Path]:
    """Every chart of the sweep; returns ``{name: png path}``."""
    charts = {"by_parameter": by_parameter(spec, table, out / "objective_by_parameter.png"),
              "curves": curves(matrix, best, holdout, out / "curves.png")}
    if len(spec.keys) == 2 and spec.raw.search == "grid":
        charts["heatmap"] = heatmap(spec, table, out / "heatmap.png")
    return charts


def by_parameter(spec: SweepSpec, table: pd.DataFrame, path: Path) -> Path:
    """The objective of every trial against each searched parameter."""
    keys = spec.keys
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        values = table[key]
        numeric = pd.api.types.is_numeric_dtype(values)
        x = values if numeric else values.astype(str)
        ax.scatter(x, table["objective"], s=18, alpha=0.8)
        ax.set_xlabel(key)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(spec.objective.metric)
    fig.suptitle(f"{spec.objective.metric} of {spec.objective.strategy} by parameter")
    return _save(fig, path)


def heatmap(spec: SweepSpec, table: pd.DataFrame, path: Path) -> Path:
    """The objective over a two-parameter grid."""
    a, b = spec.keys
    grid = table.pivot_table(index=a, columns=b, values="objective", aggfunc="mean")
    fig, ax = plt.subplots(figsize=(1.2 * len(grid.columns) + 3, 0.6 * len(grid.index) + 2.5))
    image = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns])
    ax.set_yticks(range(len(grid.index)), [str(i) for i in grid.index])
    ax.set_xlabel(b)
    ax.set_ylabel(a)
    for (i, j), value in np.ndenumerate(grid.to_numpy(dtype=float)):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.3g}", ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(image, ax=ax, label=spec.objective.metric)
    return _save(fig, path)


def curves(matrix: pd.DataFrame, best: str, holdout: pd.Series, path: Path) -> Path:
    """Growth of 1 for every trial on the selection period, the chosen one highlighted,
    then the chosen config on the holdout."""
    fig, ax = plt.subplots(figsize=(10, 4.5))
    growth = (1 + matrix).cumprod()
    for column in growth:
        if column != best:
            ax.plot(growth.index, growth[column], color="0.7", lw=0.8)
    ax.plot(growth.index, growth[best], color="C0", lw=1.8, label=f"chosen {best} (selection)")
    end = float(growth[best].iloc[-1]) if len(growth) else 1.0
    if len(holdout):
        held = end * (1 + holdout).cumprod()
        ax.plot(held.index, held, color="C3", lw=1.8, label="chosen, holdout")
        ax.axvline(held.index[0], color="k", ls="--", lw=0.8)
    ax.set_ylabel("growth of 1")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title(f"{len(matrix.columns)} trials on the selection period, then the holdout")
    return _save(fig, path)
