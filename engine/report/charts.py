"""Static charts drawn with matplotlib's Agg backend from recorded series (no display needed).

backtrader's own ``cerebro.plot()`` needs an interactive backend and fails on headless
machines, so the engine draws from the equity and forecast series it records instead.
Every chart gives a strategy the same colour (``strategy_colors``), in the PNGs, the
interactive page and ``engine.compare`` alike; legends sit below the plots.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

BENCHMARK = "buy_and_hold"
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f"]
BENCHMARK_COLOR = "#222222"
LOG_RANGE = 10.0  # a value axis spanning more than this factor is drawn on a log scale
ZOOM_BARS = 90  # bars in the close-up forecast panel


def strategy_colors(labels: Iterable[str]) -> dict[str, str]:
    """One colour per label, in first-seen order; buy-and-hold is always near-black."""
    colors: dict[str, str] = {}
    others = 0
    for label in labels:
        if label in colors:
            continue
        if BENCHMARK in label:
            colors[label] = BENCHMARK_COLOR
        else:
            colors[label] = PALETTE[others % len(PALETTE)]
            others += 1
    return colors


def wants_log(series: Iterable[pd.Series]) -> bool:
    """Whether positive values span more than ``LOG_RANGE`` times."""
    values = np.concatenate([np.asarray(s, float) for s in series] or [np.array([1.0])])
    values = values[np.isfinite(values) & (values > 0)]
    return bool(len(values)) and values.max() / values.min() > LOG_RANGE


def _style(label: str, color: str) -> dict:
    dashed = {"linestyle": "--"} if BENCHMARK in label else {}
    return {"color": color, "linewidth": 1.2, **dashed}


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _legend_below(fig, axes) -> None:
    handles, labels = {}, []
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    if labels:
        fig.legend([handles[label] for label in labels], labels, loc="upper center",
                   bbox_to_anchor=(0.5, 0.0), ncol=min(4, len(labels)), fontsize=8,
                   frameon=False)


def _markers(ax, equity: pd.Series, fills: pd.DataFrame | None, color: str) -> None:
    """Buys (^) and sells (v) on the equity curve at the close of the fill's bar."""
    if fills is None or fills.empty:
        return
    at = pd.DatetimeIndex(fills["time"])
    values = equity.reindex(at, method="ffill").to_numpy()
    for side, marker in (("buy", "^"), ("sell", "v")):
        mask = (fills["side"] == side).to_numpy()
        ax.scatter(at[mask], values[mask], marker=marker, s=22, color=color,
                   edgecolors="white", linewidths=0.5, zorder=3)


def equity_chart(curves: Mapping[str, Mapping[str, pd.Series]], path: Path,
                 log_scale: bool | None = None, title: str = "Equity",
                 fills: Mapping[tuple[str, str], pd.DataFrame] | None = None,
                 colors: Mapping[str, str] | None = None) -> Path:
    """Equity curves of every strategy, one column per symbol, drawdowns underneath.

    Args:
        curves: ``{symbol: {strategy label: equity series}}``.
        path: The PNG to write.
        log_scale: Log-scaled equity axis; None (default) uses one where a panel's
            values span more than 10x.
        title: Figure title.
        fills: ``{(label, symbol): fills}``; buys (^) and sells (v) are marked.
        colors: ``{label: colour}``. Defaults to ``strategy_colors`` of the labels.
    """
    symbols = list(curves)
    colors = colors or strategy_colors(label for s in symbols for label in curves[s])
    fig, axes = plt.subplots(2, len(symbols), figsize=(7 * len(symbols), 6.5), sharex="col",
                             squeeze=False, gridspec_kw={"height_ratios": [3, 1]})
    for col, symbol in enumerate(symbols):
        top, bottom = axes[0][col], axes[1][col]
        for label, equity in curves[symbol].items():
            style = _style(label, colors[label])
            top.plot(equity.index, equity.to_numpy(), label=label, **style)
            _markers(top, equity, (fills or {}).get((label, symbol)), colors[label])
            drawdown = equity / equity.cummax() - 1
            bottom.plot(drawdown.index, 100 * drawdown.to_numpy(), **style)
        top.set_title(f"{title}: {symbol}")
        top.set_ylabel("equity")
        if wants_log(curves[symbol].values()) if log_scale is None else log_scale:
            top.set_yscale("log")
        top.grid(alpha=0.3)
        bottom.set_ylabel("drawdown %")
        bottom.grid(alpha=0.3)
        bottom.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    _legend_below(fig, axes)
    return _save(fig, path)


def forecast_chart(closes: Mapping[str, pd.Series], forecasts: Mapping[str, pd.DataFrame],
                   path: Path) -> Path:
    """Actual vs predicted close, one row per symbol: the whole test period on the left
    (log axis where prices span more than 10x), the last 90 bars on the right with the
    re-fit bars marked."""
    symbols = list(forecasts)
    fig, axes = plt.subplots(len(symbols), 2, figsize=(14, 4.2 * len(symbols)), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 2]})
    for row, symbol in zip(axes, symbols, strict=True):
        table = forecasts[symbol]
        predicted = pd.Series(table["pred_close"].to_numpy(), pd.DatetimeIndex(table["target"]))
        actual = closes[symbol][closes[symbol].index >= predicted.index[0]]
        starts = table.groupby("fold")["target"].min()
        for ax, first in ((row[0], 0), (row[1], max(0, len(predicted) - ZOOM_BARS))):
            pred, act = predicted.iloc[first:], actual[actual.index >= predicted.index[first]]
            ax.plot(act.index, act.to_numpy(), label="actual close", color="black",
                    linewidth=0.9 if first == 0 else 1.3)
            ax.plot(pred.index, pred.to_numpy(), label="predicted close", color="tab:orange",
                    linewidth=0.8 if first == 0 else 1.3, alpha=0.85)
            ax.grid(alpha=0.3)
        if wants_log([actual]):
            row[0].set_yscale("log")
        for when in starts[starts >= predicted.index[-min(ZOOM_BARS, len(predicted))]]:
            row[1].axvline(when, color="grey", linestyle=":", linewidth=0.8)
        row[0].set_title(f"{symbol}: walk-forward forecast of the next close "
                         f"({len(starts)} folds)")
        row[1].set_title(f"last {min(ZOOM_BARS, len(predicted))} bars "
                         "(dotted: first bar of a re-fitted fold)")
        row[0].set_ylabel("price")
        for ax in row:
            ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    _legend_below(fig, axes[:, :1])
    return _save(fig, path)


def folds_chart(per_symbol: Mapping[str, pd.DataFrame], path: Path,
                label: str = "lstm") -> Path:
    """Forecast MSE per fold of forecaster ``label`` beside the persistence MSE, one panel
    per symbol."""
    symbols: Sequence[str] = list(per_symbol)
    fig, axes = plt.subplots(len(symbols), 1, figsize=(11, 3.2 * len(symbols)), squeeze=False)
    for ax, symbol in zip(axes[:, 0], symbols, strict=True):
        table = per_symbol[symbol]
        x = table["fold"].to_numpy()
        ax.bar(x - 0.2, table["mse"], width=0.4, label=label)
        ax.bar(x + 0.2, table["persistence_mse"], width=0.4, label="persistence", color="grey")
        ax.set_yscale("log")
        ax.set_title(f"{symbol}: forecast MSE per fold (target scale)")
        ax.set_xlabel("fold")
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    _legend_below(fig, axes)
    return _save(fig, path)


def diagnostics_chart(scored: Mapping[str, pd.DataFrame],
                      by_strength: Mapping[str, Sequence[Mapping]], path: Path) -> Path:
    """Per symbol: predicted vs realised next-bar return, and hit rate by quintile of the
    predicted move's size against the 50% line.

    Args:
        scored: ``{symbol: frame with pred_return and true_return}``.
        by_strength: ``{symbol: records of hit_rate_by_strength}``.
        path: The PNG to write.
    """
    symbols = list(scored)
    fig, axes = plt.subplots(len(symbols), 2, figsize=(12, 4.2 * len(symbols)), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 2]})
    for row, symbol in zip(axes, symbols, strict=True):
        pred, true = 100 * scored[symbol]["pred_return"], 100 * scored[symbol]["true_return"]
        reach = float(max(pred.abs().max(), true.abs().max(), 1e-6))
        row[0].scatter(pred, true, s=6, alpha=0.4, color="tab:blue")
        row[0].plot([-reach, reach], [-reach, reach], color="grey", linestyle=":",
                    linewidth=0.9, label="realised = predicted")
        row[0].axhline(0, color="black", linewidth=0.5)
        row[0].axvline(0, color="black", linewidth=0.5)
        row[0].set_xlabel("predicted next-bar return %")
        row[0].set_ylabel("realised %")
        row[0].set_title(f"{symbol}: predicted vs realised")
        table = pd.DataFrame(list(by_strength[symbol]))
        if not table.empty:
            row[1].bar(table["quintile"], 100 * table["hit_rate"], color="tab:blue")
            for x, n in zip(table["quintile"], table["n"], strict=True):
                row[1].annotate(f"n={n}", (x, 2), ha="center", fontsize=7, color="white")
        row[1].axhline(50, color="grey", linestyle="--", linewidth=0.9)
        row[1].set_ylim(0, 100)
        row[1].set_xlabel("quintile of |predicted return| (1 = smallest)")
        row[1].set_ylabel("hit rate %")
        row[1].set_title("direction right, by size of the predicted move")
        for ax in row:
            ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
