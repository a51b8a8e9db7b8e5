"""Borrow interest, computed by hand: shorts pay on their coins, negative cash pays too."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from engine.config import BrokerConfig, validate_config
from engine.errors import ConfigError, ExecutionError
from engine.execution import Account, Bar, CostModel, borrow_per_bar, make_account, rules
from engine.simulation import simulate
from strategies.base import TargetStrategy

FREE = CostModel(commission=0.0, slippage=0.0)
RATE = 0.365  # a year: 0.001 a day
DAY = rules.bar_rate(RATE, 86_400_000)
U = 10 * (1 - 1e-9)  # units that 1,000 of equity buys or sells at 100 (less the margin)


def test_the_rate_is_simple_interest_per_bar_over_a_365_day_year():
    assert DAY == pytest.approx(0.001, rel=1e-15)
    assert rules.bar_rate(RATE, 3_600_000) == pytest.approx(0.001 / 24, rel=1e-15)
    broker = BrokerConfig(borrow_rate=0.0876)
    assert borrow_per_bar(broker, "1h") == pytest.approx(0.0876 / 8760, rel=1e-15)
    assert borrow_per_bar(BrokerConfig(), None) == 0.0
    with pytest.raises(ExecutionError, match="data.timeframe"):
        make_account(broker)


def test_a_short_pays_interest_on_its_coins_marked_at_each_close():
    account = Account(1_000.0, FREE, borrow_per_bar=DAY)
    account.rebalance({"A": -1.0}, {"A": Bar(100.0)}, "t1")
    assert account.cash == pytest.approx(1_000 + 100 * U)
    paid = account.accrue({"A": 110.0})
    assert paid == pytest.approx(U * 110 * 0.001, rel=1e-12)
    account.accrue({"A": 90.0})
    assert account.borrow == pytest.approx(U * (110 + 90) * 0.001, rel=1e-12)
    assert account.borrow_by_symbol == {"A": pytest.approx(account.borrow, rel=1e-15)}
    assert account.cash == pytest.approx(1_000 + 100 * U - U * 0.2, rel=1e-12)
    # the interest is the symbol's cost: its contribution is the price move less it
    assert account.contribution("A", 90.0) == pytest.approx(U * (100 - 90) - U * 0.2)


def test_a_long_on_own_cash_pays_nothing_and_a_levered_long_pays_on_the_cash_it_borrowed():
    own = Account(1_000.0, FREE, borrow_per_bar=DAY)
    own.rebalance({"A": 1.0}, {"A": Bar(100.0)}, "t1")
    assert own.accrue({"A": 50.0}) == 0.0 and own.borrow == 0.0
    levered = Account(1_000.0, FREE, leverage=2.0, borrow_per_bar=DAY)
    levered.rebalance({"A": 2.0}, {"A": Bar(100.0)}, "t1")
    owed = 2 * U * 100 - 1_000  # cash below zero
    # the loan is cash: its interest does not move with the price
    assert levered.accrue({"A": 130.0}) == pytest.approx(owed * 0.001, rel=1e-9)
    assert levered.accrue({"A": 70.0}) == pytest.approx((owed + owed * 0.001) * 0.001,
                                                        rel=1e-9)


def test_negative_cash_interest_is_shared_by_the_longs_and_shorts_pay_their_own():
    account = Account(1_000.0, FREE, leverage=3.0, borrow_per_bar=DAY)
    account.rebalance({"A": 2.0, "B": 0.5, "C": -0.5},
                      {"A": Bar(100.0), "B": Bar(10.0), "C": Bar(20.0)}, "t1")
    closes = {"A": 100.0, "B": 10.0, "C": 20.0}
    owed = -account.cash * 0.001
    short = -account.size("C") * 20 * 0.001
    account.accrue(closes)
    by = account.borrow_by_symbol
    assert by["A"] == pytest.approx(owed * 0.8, rel=1e-9)  # longs of 2,000 and 500 at cost
    assert by["B"] == pytest.approx(owed * 0.2, rel=1e-9)
    assert by["C"] == pytest.approx(short, rel=1e-12)
    assert account.borrow == pytest.approx(owed + short, rel=1e-12)


def test_no_rate_charges_nothing_and_the_state_round_trips():
    account = Account(1_000.0, FREE)
    account.rebalance({"A": -1.0}, {"A": Bar(100.0)}, "t1")
    assert account.accrue({"A": 100.0}) == 0.0
    charged = Account(1_000.0, FREE, borrow_per_bar=DAY)
    charged.rebalance({"A": -1.0}, {"A": Bar(100.0)}, "t1")
    charged.accrue({"A": 100.0})
    again = Account.from_dict(charged.to_dict(), FREE, borrow_per_bar=DAY)
    assert (again.borrow, again.borrow_by_symbol, again.cash) == \
        (charged.borrow, charged.borrow_by_symbol, charged.cash)
    old = {k: v for k, v in charged.to_dict().items() if not k.startswith("borrow")}
    assert Account.from_dict(old, FREE).borrow == 0.0  # a state saved before interest existed


class ShortFromTheFirstClose(TargetStrategy):
    """Short all equity at the first close, then hold (test helper, not registered)."""

    def decide(self):
        return ({self.data._name: -1.0}, False) if len(self.data) == 1 else None


def test_a_backtest_short_pays_interest_each_bar_from_its_fill_on():
    index = pd.date_range("2024-01-01", periods=4, freq="1D", tz="UTC", name="timestamp")
    closes = [100.0, 110.0, 90.0, 95.0]
    frame = pd.DataFrame({"open": [100.0, 100.0, 110.0, 90.0], "high": 200.0, "low": 50.0,
                          "close": closes, "volume": 1.0}, index=index)
    broker = BrokerConfig(cash=1_000.0, commission=0.0, slippage=0.0, borrow_rate=RATE)
    run = simulate({"A": frame}, ShortFromTheFirstClose, {}, broker, timeframe="1d")
    # filled at the second open (100); each close then charges 0.1% of the coins' value
    paid = U * 0.001 * (110 + 90 + 95)
    want = [1_000.0, 1_000 - U * (10 + 0.11), 1_000 + U * (10 - 0.2), 1_000 + U * (5 - 0.295)]
    assert run.equity.tolist() == pytest.approx(want, rel=1e-12)
    assert run.borrow == pytest.approx(paid, rel=1e-12)
    assert run.contributions["A"]["borrow"] == pytest.approx(paid, rel=1e-12)
    free = simulate({"A": frame}, ShortFromTheFirstClose, {},
                    broker.model_copy(update={"borrow_rate": 0.0}))
    assert free.equity.iloc[-1] - run.equity.iloc[-1] == pytest.approx(paid, rel=1e-9)
    assert free.borrow == 0.0 and math.isclose(free.equity.iloc[-1], 1_000 + 5 * U)


@pytest.mark.parametrize(("rate", "words"), [(-0.01, "broker.borrow_rate"),
                                             (1.5, "broker.borrow_rate"),
                                             (float("nan"), "broker.borrow_rate")])
def test_a_negative_or_absurd_rate_is_a_one_line_error(rate, words):
    with pytest.raises(ConfigError, match=words) as info:
        validate_config({"broker": {"borrow_rate": rate}})
    assert "\n" not in str(info.value)
