"""Every metric a report writes, and which way is better: the one list of directions.

The comparison table's order (``backtest.sort_by``, ``python -m engine.compare
--sort-by``) and a sweep's objective (``objective.metric``) both read ``better`` here, so
"best first" and "the best trial" cannot disagree. ``"max"``: larger is better; ``"min"``:
smaller is better. Counts and shares with no better side (``n_trades``, ``exposure``,
``avg_bars_held``, ``beta``, ``n``, ``up_share``) are ``"max"``: largest first.
"""

from __future__ import annotations

#: The trading metrics of each ``strategies`` entry of report.json, and their direction.
TRADING = {
    "total_return": "max", "cagr": "max", "volatility": "min", "sharpe": "max",
    "sortino": "max", "max_drawdown": "min", "calmar": "max", "n_trades": "max",
    "win_rate": "max", "profit_factor": "max", "expectancy": "max", "avg_bars_held": "max",
    "best_trade": "max", "worst_trade": "max", "exposure": "max", "fees_paid": "min",
    "borrow_paid": "min", "funding_paid": "min", "final_equity": "max", "alpha": "max",
    "beta": "max", "information_ratio": "max",
}
#: The forecast metrics of each ``forecast`` entry of report.json, and their direction.
FORECAST = {
    "n": "max", "mse": "min", "rmse": "min", "mae": "min", "mape": "min",
    "directional_accuracy": "max", "mse_ratio": "min", "up_share": "max",
}
DIRECTIONS = {**TRADING, **FORECAST}

#: Trading metrics a comparison table may be sorted by (``backtest.sort_by``).
METRICS = (
    "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "n_trades",
    "win_rate", "exposure", "fees_paid", "borrow_paid", "funding_paid", "final_equity",
    "volatility", "calmar", "profit_factor", "alpha", "information_ratio",
)
#: What a sweep may optimise (``objective.metric``): those, and the forecast's mse_ratio.
OBJECTIVES = (*METRICS, "mse_ratio")


def better(metric: str) -> str:
    """``"max"`` or ``"min"``: which way ``metric`` is better.

    Raises:
        KeyError: ``metric`` is not a metric the report writes.
    """
    return DIRECTIONS[metric]


def lower_is_better(metric: str) -> bool:
    """Whether smaller values of ``metric`` are better."""
    return better(metric) == "min"
