"""Perpetual funding, computed by hand: longs pay a positive rate, shorts receive it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.config import BrokerConfig
from engine.data.funding import per_bar
from engine.execution import Account, Bar, CostModel, borrow_per_bar, cost_model
from engine.execution.kernel import prices, run
from engine.execution.records import FUNDING
from engine.simulation import simulate
from strategies.base import TargetStrategy
from tests.engine.execution.test_kernel import START, ArrayDecisions, assert_same_run
from tests.fast_path import SYMBOL, series

FREE = CostModel(commission=0.0, slippage=0.0)
U = 10 * (1 - 1e-9)  # units that 1,000 of equity buys or sells at 100 (less the margin)


@pytest.mark.parametrize(("side", "rate", "paid"), [(1.0, 0.0001, 0.1), (-1.0, 0.0001, -0.1),
                                                    (1.0, -0.0003, -0.3), (-1.0, -0.0003, 0.3)])
def test_a_long_pays_a_positive_rate_and_a_short_receives_it(side, rate, paid):
    account = Account(1_000.0, FREE)
    account.rebalance({"A": side}, {"A": Bar(100.0)}, "t1")
    cash = account.cash
    # marked at the funding time's price (120), not at the entry price
    assert account.fund({"A": 120.0}, {"A": rate}) == pytest.approx(paid * U * 1.2 / 10)
    assert account.funding == account.funding_by_symbol["A"] == pytest.approx(paid * U * 0.12)
    assert account.cash == pytest.approx(cash - paid * U * 0.12)
    assert account.contribution("A", 100.0) == pytest.approx(-paid * U * 0.12)
    assert account.fund({"A": 120.0}, {"B": rate}) == 0.0  # another symbol's funding


def test_funding_times_are_summed_into_the_bar_they_fall_in():
    index = pd.date_range("2024-01-01", periods=4, freq="4h", tz="UTC")
    times = pd.DatetimeIndex(["2023-12-31 16:00", "2024-01-01 00:00", "2024-01-01 08:00",
                              "2024-01-01 10:00", "2024-01-01 16:00"], tz="UTC")
    rates = pd.Series([0.5, 0.001, 0.002, 0.003, 0.5], index=times)
    # before the first bar and after the last bar's end: left out
    np.testing.assert_allclose(per_bar(rates, index, pd.Timedelta("4h")),
                               [0.001, 0.0, 0.005, 0.0])


class LongFromTheFirstClose(TargetStrategy):
    """Long all equity at the first close, then hold (test helper, not registered)."""

    params = (("side", 1.0),)

    def decide(self):
        return ({self.data._name: self.p.side}, False) if len(self.data) == 1 else None


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_a_position_opened_between_funding_times_pays_from_the_next_one_on(side):
    """4h bars, funding at 00:00, 08:00 and 16:00: the position fills at the 04:00 open,
    misses the 00:00 funding and pays at 08:00 and 16:00, each at that bar's open."""
    index = pd.date_range("2024-01-01", periods=6, freq="4h", tz="UTC", name="timestamp")
    opens = [100.0, 100.0, 110.0, 120.0, 90.0, 95.0]
    frame = pd.DataFrame({"open": opens, "high": 200.0, "low": 50.0, "close": opens[1:] + [95.0],
                          "volume": 1.0, FUNDING: [0.01, 0.0, 0.002, 0.0, -0.001, 0.0]},
                         index=index)
    broker = BrokerConfig(cash=1_000.0, commission=0.0, slippage=0.0)
    run_ = simulate({"A": frame}, LongFromTheFirstClose, {"side": side}, broker)
    paid = side * U * (110 * 0.002 + 90 * -0.001)
    assert run_.funding == pytest.approx(paid, rel=1e-12)
    assert run_.contributions["A"]["funding"] == pytest.approx(paid, rel=1e-12)
    spot = simulate({"A": frame.drop(columns=FUNDING)}, LongFromTheFirstClose, {"side": side},
                    broker)
    assert spot.funding == 0.0
    np.testing.assert_allclose(spot.equity - run_.equity,
                               [0, 0, side * U * 0.22, side * U * 0.22, side * U * 0.13,
                                side * U * 0.13], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [1, 3])
def test_the_kernel_pays_the_backtests_funding_and_interest(seed):
    frame, _ = series(seed)
    rng = np.random.default_rng(seed)
    frame = frame.assign(**{FUNDING: rng.choice([0.0, 0.0, 0.0003, -0.0002, 0.001],
                                                len(frame))})
    weights = rng.choice([-2.0, -1.0, -0.5, 0.0, 0.7, 1.5, 2.0, np.nan], (len(frame), 3))
    cfg = BrokerConfig(cash=1_000, commission=0.002, slippage=0.01, leverage=2,
                       borrow_rate=0.2)
    slow = simulate({SYMBOL: frame}, ArrayDecisions, {"weights": weights}, cfg,
                    trade_start=frame.index[START], timeframe="1d")
    fast = run(prices(frame), weights, START, cfg.cash, cost_model(cfg), cfg.leverage,
               borrow_per_bar(cfg, "1d"))
    assert slow.funding != 0 and slow.borrow > 0
    assert fast.funding == pytest.approx(slow.funding, rel=1e-9)
    assert_same_run(fast, slow, frame, cfg.cash)
