"""Trading figures on hand-made series and trades."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine.report.charts import strategy_colors, wants_log
from engine.report.interactive import monthly_returns
from engine.report.metrics import relative_metrics, trade_metrics


def test_trade_metrics_by_hand():
    m = trade_metrics([100.0, -50.0, 30.0, -10.0], [2, 4, 3, 1])
    assert m["n_trades"] == 4
    assert m["win_rate"] == 0.5
    assert m["profit_factor"] == pytest.approx(130 / 60)
    assert m["expectancy"] == pytest.approx(17.5)
    assert m["avg_bars_held"] == pytest.approx(2.5)
    assert (m["best_trade"], m["worst_trade"]) == (100.0, -50.0)
    assert trade_metrics([5.0], [1])["profit_factor"] is None  # no loss
    assert trade_metrics([], [])["expectancy"] is None


def test_relative_metrics_of_a_leveraged_copy():
    rng = np.random.default_rng(1)
    index = pd.date_range("2021-01-01", periods=200, freq="D", tz="UTC")
    bench_returns = rng.normal(0.001, 0.02, 200)
    bench = pd.Series(100 * np.cumprod(1 + bench_returns), index)
    strategy_returns = pd.Series(2 * bench_returns + 0.0005, index).iloc[1:]
    m = relative_metrics(strategy_returns, bench, 365.0)
    assert m["beta"] == pytest.approx(2.0)
    assert m["alpha"] == pytest.approx(0.0005 * 365)
    active = strategy_returns.to_numpy() - bench_returns[1:]
    expected_ir = active.mean() / active.std(ddof=1) * math.sqrt(365)
    assert m["information_ratio"] == pytest.approx(expected_ir)
    assert relative_metrics(strategy_returns, None, 365.0)["beta"] is None


def test_monthly_returns_table():
    index = pd.DatetimeIndex(["2021-01-01", "2021-01-31", "2021-02-15", "2021-02-28",
                              "2021-03-31"], tz="UTC")
    equity = pd.Series([100.0, 110.0, 99.0, 121.0, 121.0], index)
    table = monthly_returns(equity)
    assert list(table.index) == [2021]
    assert table.loc[2021, 1] == pytest.approx(0.10)  # from the start, 100 -> 110
    assert table.loc[2021, 2] == pytest.approx(0.10)  # 110 -> 121
    assert table.loc[2021, 3] == pytest.approx(0.0)
    assert np.isnan(table.loc[2021, 4])


def test_one_colour_per_strategy_and_log_rule():
    colors = strategy_colors(["a", "buy_and_hold", "b", "a"])
    assert len(set(colors.values())) == 3 and colors["buy_and_hold"] == "#222222"
    assert wants_log([pd.Series([1.0, 11.0])])
    assert not wants_log([pd.Series([1.0, 9.0]), pd.Series([2.0, 5.0])])


def test_percent_formatting_has_no_negative_zero():
    from engine.report import format_value

    assert format_value("alpha", -1e-9) == "0.0%"
    assert format_value("alpha", -0.0006) == "-0.1%"
    assert format_value("calmar", None) == "-"
