"""Charts drawn with matplotlib's Agg backend from recorded series (no display needed).

backtrader's own ``cerebro.plot()`` needs an interactive backend and fails on headless
machines, so the engine draws from the equity and forecast series it records instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

_BENCHMARK = "buy_and_hold"


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def equity_chart(curves: Mapping[str, Mapping[str, pd.Series]], path: Path,
                 log_scale: bool = False, title: str = "Equity") -> Path:
    """Equity curves of every strategy, one column per symbol, drawdowns underneath.

    Args:
        curves: ``{symbol: {strategy label: equity series}}``.
        path: The PNG to write.
        log_scale: Log-scaled equity axis.
        title: Figure title.
    """
    symbols = list(curves)
    fig, axes = plt.subplots(2, len(symbols), figsize=(7 * len(symbols), 6.5), sharex="col",
                             squeeze=False, gridspec_kw={"height_ratios": [3, 1]})
    for col, symbol in enumerate(symbols):
        top, bottom = axes[0][col], axes[1][col]
        for label, equity in curves[symbol].items():
            style = {"color": "black", "linestyle": "--", "linewidth": 1.2} \
                if _BENCHMARK in label else {"linewidth": 1.2}
            top.plot(equity.index, equity.to_numpy(), label=label, **style)
            drawdown = equity / equity.cummax() - 1
            bottom.plot(drawdown.index, 100 * drawdown.to_numpy(), **style)
        top.set_title(f"{title}: {symbol}")
        top.set_ylabel("equity")
        if log_scale:
            top.set_yscale("log")
        top.grid(alpha=0.3)
        top.legend(fontsize=8, loc="upper left")
        bottom.set_ylabel("drawdown %")
        bottom.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(fig, path)


def forecast_chart(closes: Mapping[str, pd.Series], forecasts: Mapping[str, pd.DataFrame],
                   path: Path) -> Path:
    """Actual vs predicted close over the test period, one panel per symbol.

    Dotted vertical lines mark the first bar of each re-fitted fold.
    """
    symbols = list(forecasts)
    fig, axes = plt.subplots(len(symbols), 1, figsize=(11, 4.5 * len(symbols)), squeeze=False)
    for ax, symbol in zip(axes[:, 0], symbols, strict=True):
        table = forecasts[symbol]
        predicted = pd.Series(table["pred_close"].to_numpy(), pd.DatetimeIndex(table["target"]))
        actual = closes[symbol][closes[symbol].index >= predicted.index[0]]
        ax.plot(actual.index, actual.to_numpy(), label="actual close", color="black",
                linewidth=1.1)
        ax.plot(predicted.index, predicted.to_numpy(), label="predicted close",
                color="tab:orange", linewidth=1.0)
        starts = table.groupby("fold")["target"].min()
        for when in starts.iloc[1:]:
            ax.axvline(when, color="grey", linestyle=":", linewidth=0.7)
        ax.set_title(f"{symbol}: walk-forward forecast of the next close "
                     f"({len(starts)} folds; dotted lines = re-fits)")
        ax.set_ylabel("price")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def folds_chart(per_symbol: Mapping[str, pd.DataFrame], path: Path) -> Path:
    """Forecast MSE per fold beside the persistence MSE, one panel per symbol."""
    symbols: Sequence[str] = list(per_symbol)
    fig, axes = plt.subplots(len(symbols), 1, figsize=(11, 3.2 * len(symbols)), squeeze=False)
    for ax, symbol in zip(axes[:, 0], symbols, strict=True):
        table = per_symbol[symbol]
        x = table["fold"].to_numpy()
        ax.bar(x - 0.2, table["mse"], width=0.4, label="LSTM")
        ax.bar(x + 0.2, table["persistence_mse"], width=0.4, label="persistence", color="grey")
        ax.set_yscale("log")
        ax.set_title(f"{symbol}: forecast MSE per fold (target scale)")
        ax.set_xlabel("fold")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
