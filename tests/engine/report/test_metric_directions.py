"""One list of metric directions: the table, the sweep objective and compare agree.

Every metric name the report writes has a direction in ``engine.metric_names``; the
comparison table's order, a sweep's choice and ``python -m engine.compare`` all read it.
A Sharpe ratio of returns that do not vary is 0, also when rounding leaves a tiny spread.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.compare import comparison
from engine.config import BrokerConfig
from engine.execution import StrategyRun
from engine.metric_names import DIRECTIONS, FORECAST, METRICS, OBJECTIVES, TRADING, better
from engine.report import comparison_table, forecast_metrics, trading_metrics
from engine.simulation import simulate
from engine.sweep.runner import choose
from engine.sweep.spec import Objective
from engine.sweep.stats import moments, sharpe_ratio
from strategies.sma_cross import SMACross
from tests.conftest import make_ohlcv


def test_every_metric_the_report_writes_has_a_direction():
    frame = make_ohlcv(200, seed=3)
    run = simulate({"X/USDT": frame}, SMACross, {"fast": 3, "slow": 10}, BrokerConfig())
    written = trading_metrics(run, 365, benchmark=frame["close"])
    assert set(written) == set(TRADING)
    table = pd.DataFrame({"pred_close": frame["close"] * 1.001,
                          "pred_target": np.full(len(frame), 0.001),
                          "base_close": frame["close"], "target": frame.index.shift(1),
                          "fold": 0}, index=frame.index)
    forecast = forecast_metrics(table, frame["close"])
    assert {k for k, v in forecast.items() if not isinstance(v, dict)} == set(FORECAST)
    assert set(METRICS) <= set(TRADING) and set(OBJECTIVES) <= set(DIRECTIONS)
    assert set(DIRECTIONS.values()) == {"max", "min"}


@pytest.mark.parametrize("metric", OBJECTIVES)
def test_the_table_the_sweep_and_compare_rank_every_metric_the_same_way(metric):
    values = [3.0, 1.0, 2.0]
    results = [{"strategy": f"s{i}", "symbol": "X/USDT", metric: v}
               for i, v in enumerate(values)]
    records = [{"key": f"s{i}", "objective": v} for i, v in enumerate(values)]
    best_first = "s1" if better(metric) == "min" else "s0"
    if metric in METRICS:  # sortable table columns (mse_ratio is a forecast metric)
        assert comparison_table(results, metric)["strategy"].iloc[0] == best_first
    spec = type("Spec", (), {"objective": Objective(metric=metric)})()
    assert choose(spec, records)["key"] == best_first


def test_a_volatility_objective_chooses_the_calmest_trial_and_compare_sorts_it_first():
    records = [{"key": "wild", "objective": 0.9}, {"key": "calm", "objective": 0.2}]
    spec = type("Spec", (), {"objective": Objective(metric="volatility")})()
    assert choose(spec, records)["key"] == "calm"
    saved = type("Saved", (), {"name": "run", "conditions": {}, "report": {"strategies": [
        {"strategy": "wild", "symbol": "X/USDT", "volatility": 0.9},
        {"strategy": "calm", "symbol": "X/USDT", "volatility": 0.2}]}})()
    assert comparison([saved], "volatility")["strategy"].tolist() == ["calm", "wild"]


def constant_growth(rate: float, bars: int = 400) -> pd.Series:
    index = pd.date_range("2021-01-01", periods=bars, freq="1D", tz="UTC")
    return pd.Series(10_000.0 * (1 + rate) ** np.arange(bars), index)


@pytest.mark.parametrize("rate", [0.0, 0.001, 0.01, -0.002])
def test_the_sharpe_ratio_of_returns_that_do_not_vary_is_zero(rate):
    equity = constant_growth(rate)
    returns = equity.pct_change().dropna()
    if rate:  # rounding leaves a spread of about 1e-17, not 0
        assert 0 < returns.std() < 1e-12
    run = StrategyRun("steady", "X/USDT", equity, pd.DataFrame({"X/USDT": 0.0}, equity.index))
    assert trading_metrics(run, 365)["sharpe"] == 0.0
    assert sharpe_ratio(returns.to_numpy()) == 0.0
    assert moments(returns.to_numpy()).sharpe == 0.0


def test_a_one_in_a_million_spread_still_counts():
    rng = np.random.default_rng(0)
    returns = 0.001 + rng.normal(0, 1e-6, 500)
    assert sharpe_ratio(returns) == pytest.approx(np.mean(returns) / np.std(returns, ddof=1))
    assert sharpe_ratio(returns) > 100
