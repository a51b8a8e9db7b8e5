"""Console tables fit 120 columns by default; ``--wide`` prints every column."""

from __future__ import annotations

import numpy as np

from engine.report import comparison_table, forecast_table
from engine.report.console import (
    FORECAST_PRIORITY,
    TRADING_PRIORITY,
    WIDTH,
    console_table,
    fit_table,
    left_out,
)

LABELS = ["lstm_signal(entry=0.01,exit=0,short=True,size=0.5)", "sma_cross(fast=20,slow=100)",
          "buy_and_hold"]


def _results() -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for label in LABELS:
        for symbol in ("BTC/USDT", "ETH/USDT"):
            rows.append({"strategy": label, "symbol": symbol, "total_return": 11.5,
                         "cagr": 0.55, "sharpe": rng.normal(), "sortino": 1.9, "calmar": 1.27,
                         "volatility": 0.44, "max_drawdown": 0.43, "n_trades": 391,
                         "win_rate": 0.527, "profit_factor": 1.09, "exposure": 0.54,
                         "alpha": -0.29, "beta": 0.62, "information_ratio": -1.42,
                         "fees_paid": 36_060.98, "final_equity": 1_147_036.66})
    return rows


def _forecasts() -> tuple[dict, dict]:
    metrics = {"n": 2059, "mse": 0.00105, "mse_ratio": 1.12, "rmse": 1623.85, "mape": 0.023,
               "directional_accuracy": 0.507,
               "persistence": {"mse": 0.000938, "rmse": 1531.02}}
    tests = {"diebold_mariano": {"statistic": 6.68, "p_value_model_better": 1.0,
                                 "p_value_two_sided": 3.1e-11},
             "directional": {"baseline": 0.509, "p_value": 0.58}}
    return {"BTC/USDT": metrics, "ETH/USDT": metrics}, {"BTC/USDT": tests, "ETH/USDT": tests}


def _widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_trading_table_fits_120_columns_with_the_key_metrics():
    full = comparison_table(_results(), "sharpe")
    text = console_table(full, ("strategy", "symbol"), ("sharpe", *TRADING_PRIORITY))
    assert len(full.columns) == 18 and _widest(render := console_table(
        full, ("strategy", "symbol"), TRADING_PRIORITY, wide=True)) > WIDTH
    assert _widest(text) <= WIDTH
    header = text.splitlines()[0].split()
    assert header[:2] == ["strategy", "symbol"]
    for key in ("total_return", "sharpe", "max_drawdown", "final_equity", "n_trades"):
        assert key in header
    assert "1,147,036.66" in text and "lstm_signal(entry=0.01,exit=0,short=True,size=0.5)" in text
    shown = fit_table(full, ("strategy", "symbol"), TRADING_PRIORITY)
    assert set(left_out(full, shown)) | set(shown.columns) == set(full.columns)
    assert all(column in render.splitlines()[0] for column in full.columns)


def test_forecast_table_fits_too():
    full = forecast_table(*_forecasts())
    text = console_table(full, ("symbol",), FORECAST_PRIORITY)
    assert _widest(console_table(full, ("symbol",), FORECAST_PRIORITY, wide=True)) > WIDTH
    assert _widest(text) <= WIDTH
    for key in ("mse_ratio", "directional_accuracy", "direction_p", "dm_stat"):
        assert key in text.splitlines()[0]


def test_labels_too_long_for_the_width_are_shortened():
    results = _results()
    for row in results:
        row["strategy"] = row["strategy"] + "x" * 150
    text = console_table(comparison_table(results, "sharpe"), ("strategy", "symbol"),
                         TRADING_PRIORITY)
    assert _widest(text) <= WIDTH and ".." in text


def test_borrow_interest_is_a_column_beside_the_fees_only_where_some_run_paid_it():
    unpaid = comparison_table([{**r, "borrow_paid": 0.0} for r in _results()], "sharpe")
    assert "borrow_paid" not in unpaid.columns and "fees_paid" in unpaid.columns
    paid = [{**r, "borrow_paid": 1_234.5 if "short" in r["strategy"] else 0.0}
            for r in _results()]
    full = comparison_table(paid, "sharpe")
    columns = list(full.columns)
    assert columns.index("borrow_paid") == columns.index("fees_paid") + 1
    assert "1,234.50" in console_table(full, ("strategy", "symbol"), TRADING_PRIORITY, wide=True)
    assert comparison_table(_results(), "borrow_paid")["borrow_paid"].isna().all()
