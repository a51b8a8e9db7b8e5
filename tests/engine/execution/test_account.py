"""The execution core alone: fills, fees, sizing with shared cash, shorts and invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ExecutionError
from engine.execution import Account, Bar, CostModel, order_sizes

COSTS = CostModel(commission=0.001, slippage=0.002)


def test_a_buy_fills_at_the_slipped_open_capped_to_the_high_and_pays_commission():
    account = Account(10_000.0, COSTS)
    fills, trades = account.rebalance({"A": 1.0}, {"A": Bar(100.0, 101.0, 99.0)}, "t1")
    (fill,) = fills
    # units = 10,000 / (100 * 1.002 * 1.001) less the 1e-9 rounding margin
    units = 10_000 / (100 * 1.002 * 1.001) * (1 - 1e-9)
    assert fill.size == pytest.approx(units, rel=1e-12)
    assert fill.price == pytest.approx(100.2)
    assert fill.fee == pytest.approx(units * 100.2 * 0.001)
    assert account.cash == pytest.approx(10_000 - units * 100.2 * 1.001)
    assert account.cash >= 0 and trades == []
    # The cap: an open of 100 with a high of 100.1 fills at 100.1, not 100.2.
    capped = Account(10_000.0, COSTS)
    fills, _ = capped.rebalance({"A": 1.0}, {"A": Bar(100.0, 100.1, 99.0)}, "t1")
    assert fills[0].price == 100.1


def test_a_round_trip_reports_pnl_after_both_fees():
    account = Account(1_000.0, CostModel(commission=0.01, slippage=0.0))
    account.rebalance({"A": 0.5}, {"A": Bar(10.0, 11.0, 9.0)}, "t1", bar=1)
    units = 0.5 * 1_000 / (10 * 1.01) * (1 - 1e-9)
    fills, trades = account.rebalance({"A": 0.0}, {"A": Bar(12.0, 13.0, 11.0)}, "t2", bar=4)
    (trade,) = trades
    entry_fee, exit_fee = units * 10 * 0.01, units * 12 * 0.01
    assert trade.pnl == pytest.approx(units * 2 - entry_fee - exit_fee)
    assert trade.fees == pytest.approx(entry_fee + exit_fee)
    assert trade.bars_held == 3 and trade.side == "long"
    assert trade.entry_time == "t1" and trade.exit_time == "t2"
    assert trade.return_ == pytest.approx(trade.pnl / (units * 10))
    assert account.equity({"A": 12.0}) == pytest.approx(1_000 + trade.pnl)
    assert account.fees == pytest.approx(entry_fee + exit_fee)


def test_a_target_on_the_side_held_keeps_the_position():
    account = Account(1_000.0, COSTS)
    account.rebalance({"A": 1.0}, {"A": Bar(10.0, 11.0, 9.0)}, "t1")
    held = account.size("A")
    fills, _ = account.rebalance({"A": 0.3}, {"A": Bar(20.0, 21.0, 19.0)}, "t2")
    assert fills == [] and account.size("A") == held
    assert not account.changes({"A": 0.3})
    # ... unless asked to resize: 0.3 of the equity at the open, after costs.
    fills, trades = account.rebalance({"A": 0.3}, {"A": Bar(20.0, 21.0, 19.0)}, "t2",
                                      resize=True)
    assert fills[0].side == "sell" and len(trades) == 1  # part of the round trip closed
    equity = account.cash + account.size("A") * 20.0
    assert account.size("A") * 20.0 / equity == pytest.approx(0.3, rel=0.01)


def test_a_short_then_a_reversal_is_one_fill_that_closes_and_opens():
    account = Account(1_000.0, CostModel(commission=0.0, slippage=0.0))
    account.rebalance({"A": -1.0}, {"A": Bar(10.0, 10.0, 10.0)}, "t1", bar=0)
    assert account.size("A") == pytest.approx(-100.0)
    assert account.cash == pytest.approx(2_000.0)  # sale proceeds are cash
    assert account.equity({"A": 8.0}) == pytest.approx(1_200.0)  # the short gained 200
    fills, trades = account.rebalance({"A": 1.0}, {"A": Bar(8.0, 8.0, 8.0)}, "t2", bar=2)
    (fill,) = fills
    # Closing 100 short at 8 leaves 1,200 of cash, all of which buys 150 units at 8.
    assert fill.side == "buy" and fill.size == pytest.approx(250.0)
    assert account.size("A") == pytest.approx(150.0)
    (trade,) = trades
    assert trade.side == "short" and trade.pnl == pytest.approx(200.0)
    assert account.positions["A"].opened_at == "t2"


def test_symbols_share_one_cash_balance_and_sales_pay_for_purchases():
    account = Account(1_000.0, CostModel(commission=0.0, slippage=0.0))
    bars = {"A": Bar(10.0, 10.0, 10.0), "B": Bar(50.0, 50.0, 50.0)}
    account.rebalance({"A": 0.5, "B": 0.5}, bars, "t1")
    assert account.size("A") == pytest.approx(50.0) and account.size("B") == pytest.approx(10.0)
    assert account.cash == pytest.approx(0.0, abs=1e-5)
    # A doubles; moving everything into B sells A first, and its cash buys B.
    bars = {"A": Bar(20.0, 20.0, 20.0), "B": Bar(50.0, 50.0, 50.0)}
    fills, _ = account.rebalance({"A": 0.0, "B": 1.0}, bars, "t2", resize=True)
    assert [f.symbol for f in fills] == ["A", "B"]
    assert account.size("B") == pytest.approx(1_500 / 50)
    assert account.contribution("A", 20.0) == pytest.approx(500.0, abs=1e-5)


def test_purchases_are_scaled_down_to_the_cash_there_is():
    account = Account(1_000.0, CostModel(commission=0.0, slippage=0.0))
    bars = {"A": Bar(10.0, 10.0, 10.0), "B": Bar(10.0, 10.0, 10.0)}
    account.rebalance({"A": 1.0}, bars, "t1")
    # A rises 4x: equity 4,000, but only ~0 cash; B at 0.5 of equity cannot be paid for.
    bars = {"A": Bar(40.0, 40.0, 40.0), "B": Bar(10.0, 10.0, 10.0)}
    account.rebalance({"B": 0.5}, bars, "t2")
    assert account.cash >= 0 and account.size("B") * 10 <= 1e-3


def test_bad_targets_are_one_line_errors():
    account = Account(1_000.0, COSTS)
    with pytest.raises(ExecutionError, match="ETH/USDT, which is not traded here"):
        account.rebalance({"ETH/USDT": 0.5}, {"BTC/USDT": Bar(1.0)}, "t")
    with pytest.raises(ExecutionError, match="add up to 1.5, more than broker.leverage = 1"):
        account.rebalance({"A": 1.0, "B": -0.5}, {"A": Bar(1.0), "B": Bar(1.0)}, "t")
    levered = Account(1_000.0, COSTS, leverage=2.0)
    levered.rebalance({"A": 1.0, "B": 1.0}, {"A": Bar(1.0), "B": Bar(1.0)}, "t")
    assert levered.cash < 0  # borrowed, as leverage allows


def test_the_account_survives_a_round_trip_through_its_state():
    account = Account(1_000.0, COSTS)
    account.rebalance({"A": 0.7}, {"A": Bar(10.0, 11.0, 9.0)}, "t1", bar=3)
    again = Account.from_dict(account.to_dict(), COSTS)
    assert again == account


def test_sizing_alone_matches_the_one_symbol_rule():
    # flat -> long: units use all cash; long -> short: the long's sale value is counted
    assert order_sizes({"A": 1.0}, {}, 1_000.0, {"A": 10.0}, COSTS)["A"] == pytest.approx(
        1_000 / (10 * 1.002 * 1.001) * (1 - 1e-9))
    delta = order_sizes({"A": -1.0}, {"A": 5.0}, 0.0, {"A": 10.0}, COSTS)["A"]
    free = 5 * 10 * 0.998 * 0.999
    assert delta == pytest.approx(-free / (10 * 1.002 * 1.001) * (1 - 1e-9) - 5.0)


bars_st = st.tuples(st.floats(1.0, 1_000.0), st.floats(0.0, 0.05), st.floats(0.0, 0.05))
weights_st = st.dictionaries(st.sampled_from(["A", "B", "C"]),
                             st.sampled_from([0.0, 0.2, 0.5, 1.0 / 3]), max_size=3)


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(st.tuples(weights_st, st.booleans(),
                                st.fixed_dictionaries({s: bars_st for s in "ABC"})),
                      min_size=1, max_size=25))
def test_invariants_under_random_long_only_targets(steps):
    account = Account(10_000.0, COSTS)
    for wanted, resize, prices in steps:
        total = sum(wanted.values())
        targets = {s: w / total for s, w in wanted.items()} if total > 1 else wanted
        bars = {s: Bar(p, p * (1 + up), p * (1 - down)) for s, (p, up, down) in prices.items()}
        fees_before = account.fees
        fills, _ = account.rebalance(targets, bars, "t", resize=resize)
        closes = {s: p for s, (p, _, _) in prices.items()}
        marked = account.cash + sum(account.size(s) * closes[s] for s in "ABC")
        assert account.equity(closes) == pytest.approx(marked, rel=1e-12)
        assert all(f.fee >= 0 for f in fills) and account.fees >= fees_before
        assert account.cash >= -1e-6  # never borrowed without leverage
        total = sum(account.contribution(s, closes[s]) for s in "ABC")
        assert 10_000 + total == pytest.approx(account.equity(closes), rel=1e-9)
        assert all(math.isfinite(account.size(s)) and account.size(s) >= 0 for s in "ABC")
