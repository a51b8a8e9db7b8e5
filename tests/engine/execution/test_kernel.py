"""The sweep kernel gives the backtrader driver's results for every fast-path strategy.

``engine.execution.kernel`` compiles the execution core's rules into one bar loop; these
tests pin it to ``engine.simulation.simulate`` (equity, every fill, fees and every round
trip to 1e-9) on generated data with warm-up bars before the traded period. The cases
come from the strategy registry (``tests/fast_path.py``): a strategy that offers
``weights_array`` is checked here, and fails here if the two paths disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from engine.config import BrokerConfig
from engine.execution import Account, CostModel, borrow_per_bar, cost_model
from engine.execution.kernel import prices, run
from engine.simulation import simulate
from strategies.base import TargetStrategy
from strategies.indicators import sma_array
from strategies.registry import resolve_params
from tests.conftest import make_ohlcv
from tests.fast_path import (
    BROKERS,
    SEEDS,
    SYMBOL,
    TIMEFRAME,
    cases,
    fast_path_strategies,
    series,
    variants,
)

START = 40


def assert_same_run(fast, slow, frame: pd.DataFrame, cash: float) -> None:
    """The kernel's run equals the backtrader run: equity, fills, fees, round trips."""
    index = frame.index
    np.testing.assert_allclose(fast.equity, slow.equity.to_numpy(), rtol=1e-9, atol=0)
    np.testing.assert_allclose(fast.position, slow.position[SYMBOL].to_numpy(), rtol=1e-9,
                               atol=1e-12)
    assert fast.fees == pytest.approx(slow.fees, rel=1e-9, abs=1e-12)
    assert fast.borrow == pytest.approx(slow.borrow, rel=1e-9, abs=1e-12)
    fills = fast.fill_records(index, SYMBOL)
    assert len(fills) == len(slow.fills)
    for mine, theirs in zip(fills, slow.fills, strict=True):
        assert (mine.time, mine.decided_at, mine.side, mine.symbol) == \
            (theirs.time, theirs.decided_at, theirs.side, theirs.symbol)
        assert [mine.size, mine.price, mine.fee, mine.value] == pytest.approx(
            [theirs.size, theirs.price, theirs.fee, theirs.value], rel=1e-9, abs=1e-12)
    trips = fast.round_trips(index, SYMBOL)
    assert len(trips) == len(slow.trades)
    for mine, theirs in zip(trips, slow.trades, strict=True):
        assert (mine.side, mine.entry_time, mine.exit_time, mine.bars_held, mine.open_at_end) \
            == (theirs.side, theirs.entry_time, theirs.exit_time, theirs.bars_held,
                theirs.open_at_end)
        assert [mine.size, mine.entry_price, mine.exit_price, mine.fees] == pytest.approx(
            [theirs.size, theirs.entry_price, theirs.exit_price, theirs.fees], rel=1e-9,
            abs=1e-12)
        assert mine.pnl == pytest.approx(theirs.pnl, rel=1e-9, abs=1e-9 * cash)
        assert mine.return_ == pytest.approx(theirs.return_, rel=1e-9, abs=1e-12)


def test_every_registered_array_strategy_is_a_case():
    covered = {name for name, _, _ in cases()}
    assert covered == set(fast_path_strategies()) >= {"lstm_signal", "sma_cross",
                                                       "buy_and_hold"}
    assert {broker for _, _, broker in cases()} == set(BROKERS)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("name", "variant", "broker"), cases(), ids="-".join)
def test_the_kernel_run_is_the_backtrader_run(name, variant, broker, seed):
    cls = fast_path_strategies()[name]
    params = resolve_params(name, variants(cls)[variant])
    cfg = BROKERS[broker]
    frame, forecasts = series(seed)
    slow = simulate({SYMBOL: frame}, cls, params, cfg, trade_start=frame.index[START],
                    forecasts={SYMBOL: forecasts}, timeframe=TIMEFRAME)
    weights = cls.weights_array(params, frame, forecasts, SYMBOL)
    fast = run(prices(frame), weights, START, cfg.cash, cost_model(cfg), cfg.leverage,
               borrow_per_bar(cfg, TIMEFRAME))
    assert len(slow.fills) > 0
    assert_same_run(fast, slow, frame, cfg.cash)
    if cfg.borrow_rate and (slow.position[SYMBOL] < 0).any():
        assert slow.borrow > 0  # the interest did apply


# Parameter sets that exercise the thresholds, beyond the generated variants.
EXTRA = [("lstm_signal", {"entry": 0.002, "exit": -0.001}),
         ("lstm_signal", {"entry": 0.004, "exit": 0.0, "short": True, "size": 0.7}),
         ("lstm_signal", {"entry": 0.001, "exit": -0.003, "short": True}),
         ("sma_cross", {"fast": 5, "slow": 20}),
         ("sma_cross", {"fast": 3, "slow": 12, "short": True, "size": 0.5}),
         ("sma_cross", {"fast": 10, "slow": 60, "short": True})]  # warm-up past the start


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("name", "params"), EXTRA, ids=[f"{n}{i}" for i, (n, _) in
                                                         enumerate(EXTRA)])
def test_threshold_cases_match_too(name, params, seed):
    cls = fast_path_strategies()[name]
    cfg = BROKERS["costly"]
    frame, forecasts = series(seed)
    slow = simulate({SYMBOL: frame}, cls, params, cfg, trade_start=frame.index[START],
                    forecasts={SYMBOL: forecasts})
    fast = run(prices(frame), cls.weights_array(params, frame, forecasts, SYMBOL), START,
               cfg.cash, cost_model(cfg), cfg.leverage)
    assert_same_run(fast, slow, frame, cfg.cash)


class ArrayDecisions(TargetStrategy):
    """Decides ``weights[t, column of the side held]`` at each close (test helper, not
    registered): any decision array through backtrader, to compare with the kernel."""

    params = (("weights", None),)

    def decide(self):
        held = self.getposition(self.data).size
        weight = self.p.weights[len(self.data) - 1, 0 if held == 0 else (1 if held > 0 else 2)]
        return None if math.isnan(weight) else ({self.data._name: float(weight)}, False)


@pytest.mark.parametrize("borrow_rate", [0.0, 0.4])
@pytest.mark.parametrize("seed", SEEDS)
def test_borrowing_up_to_leverage_2_matches(seed, borrow_rate):
    """Weights up to 2 x equity (long and short) make purchases borrow, so the kernel's
    leverage budget and its scale-down decide fills here; with a borrow rate, interest on
    the shorts' coins and on negative cash too."""
    frame, _ = series(seed)
    rng = np.random.default_rng(seed)
    weights = rng.choice([-2.0, -1.0, -0.5, 0.0, 0.7, 1.5, 2.0, np.nan], (len(frame), 3))
    cfg = BrokerConfig(cash=1_000, commission=0.002, slippage=0.01, leverage=2,
                       borrow_rate=borrow_rate)
    slow = simulate({SYMBOL: frame}, ArrayDecisions, {"weights": weights}, cfg,
                    trade_start=frame.index[START], timeframe=TIMEFRAME)
    fast = run(prices(frame), weights, START, cfg.cash, cost_model(cfg), cfg.leverage,
               borrow_per_bar(cfg, TIMEFRAME))
    assert (slow.borrow > 0) == (borrow_rate > 0)
    assert len(slow.fills) > 50 and (slow.position[SYMBOL].abs() * frame["close"].iloc[START:]
                                     > 1.2 * slow.equity).any()
    assert_same_run(fast, slow, frame, cfg.cash)


@dataclass(frozen=True)
class HalfRateAbove(CostModel):
    """Another fee rule, as one class: half the commission on fills above a value."""

    above: float = 2_000.0

    @property
    def rates(self):
        return (self.commission, self.slippage, self.above)

    @staticmethod
    def fee_rule(units, price, rates):
        value = abs(units) * price
        return value * (rates[0] if value <= rates[2] else rates[0] / 2)


def test_a_cost_model_with_another_fee_rule_is_applied_alike_by_both_paths():
    frame, forecasts = series(1)
    cls = fast_path_strategies()["lstm_signal"]
    cfg = BROKERS["costly"]
    costs = HalfRateAbove(cfg.commission, cfg.slippage, above=9_000.0)
    slow = simulate({SYMBOL: frame}, cls, {}, cfg, trade_start=frame.index[START],
                    forecasts={SYMBOL: forecasts},
                    account=Account(cfg.cash, costs, cfg.leverage))
    fast = run(prices(frame), cls.weights_array({}, frame, forecasts, SYMBOL), START, cfg.cash,
               costs, cfg.leverage)
    assert_same_run(fast, slow, frame, cfg.cash)
    flat = run(prices(frame), cls.weights_array({}, frame, forecasts, SYMBOL), START, cfg.cash,
               cost_model(cfg), cfg.leverage)
    assert fast.fees < flat.fees  # the rule did apply


def test_the_sma_array_is_backtraders_sma():
    import backtrader as bt

    from engine.simulation import feed

    frame = make_ohlcv(120, seed=4)
    seen: list[float] = []

    class Probe(bt.Strategy):
        def __init__(self):
            self.sma = bt.indicators.SMA(self.data.close, period=7)

        def next(self):
            seen.append(self.sma[0])

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feed(frame, SYMBOL))
    cerebro.addstrategy(Probe)
    cerebro.run()
    mine = sma_array(frame["close"].to_numpy(), 7)
    assert np.isnan(mine[:6]).all()
    np.testing.assert_array_equal(mine[6:], seen)


@pytest.mark.parametrize("period", [1, 2, 7, 50, 150])
def test_the_rolling_sma_is_the_exactly_rounded_mean_of_each_window(period):
    rng = np.random.default_rng(period)
    # Mixed magnitudes and cents: where a running float sum would drift from fsum's.
    close = np.round(rng.lognormal(5, 2, 600) * rng.choice([1.0, 1e-6, 1e6], 600), 2) + 0.01
    want = [math.fsum(close[i - period + 1:i + 1].tolist()) / period
            for i in range(period - 1, len(close))]
    mine = sma_array(close, period)
    assert np.isnan(mine[:period - 1]).all()
    np.testing.assert_array_equal(mine[period - 1:], want)


def test_a_decision_on_the_last_bar_is_not_filled():
    frame = make_ohlcv(10, seed=1)
    weights = np.full((10, 3), np.nan)
    weights[-1, 0] = 1.0
    result = run(prices(frame), weights, 0, 100.0, CostModel(0.001, 0.0))
    assert result.fills == 0 and result.trades == 0
    assert (result.equity == 100.0).all()
