"""Fill rules, fees, the benchmark, the LSTM signal and an independent SMA cross-check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.config import BrokerConfig
from engine.simulation import simulate
from strategies.base import TargetStrategy
from strategies.buy_and_hold import BuyAndHold
from strategies.lstm_signal import LSTMSignal
from strategies.sma_cross import SMACross
from tests.conftest import make_ohlcv

BROKER = BrokerConfig(cash=10_000, commission=0.001, slippage=0.002)


class Scripted(TargetStrategy):
    """Sides from a dict {bar number: side} (test helper, not registered)."""

    params = (("script", None),)

    def signal(self, data):
        return self.p.script.get(len(self.data) - 1)


def test_orders_fill_at_the_next_open_with_slippage_and_fees():
    frame = make_ohlcv(30)
    run = simulate({"BTC/USDT": frame}, Scripted, {"script": {5: 1.0, 12: 0.0}}, BROKER)
    buy, sell = run.fills
    assert buy.time == frame.index[6] and sell.time == frame.index[13]
    assert buy.price == pytest.approx(min(frame["open"].iloc[6] * 1.002, frame["high"].iloc[6]))
    assert sell.price == pytest.approx(max(frame["open"].iloc[13] * 0.998,
                                           frame["low"].iloc[13]))
    assert buy.fee == pytest.approx(0.001 * buy.size * buy.price)
    assert run.fees == pytest.approx(buy.fee + sell.fee)
    # All equity was used: price, slippage and fee add up to the cash at the open.
    assert buy.value + buy.fee == pytest.approx(10_000, rel=1e-6)
    expected = 10_000 + buy.size * (sell.price - buy.price) - run.fees
    assert run.equity.iloc[-1] == pytest.approx(expected, rel=1e-9)
    assert len(run.trades) == 1 and run.trades[0].pnl == pytest.approx(expected - 10_000)


def test_decision_on_the_last_bar_is_never_filled():
    frame = make_ohlcv(10)
    run = simulate({"BTC/USDT": frame}, Scripted, {"script": {9: 1.0}}, BROKER)
    assert not run.fills and run.equity.iloc[-1] == 10_000


def test_trade_start_ignores_earlier_targets_and_starts_the_equity_curve():
    frame = make_ohlcv(30)
    start = frame.index[10]
    run = simulate({"BTC/USDT": frame}, BuyAndHold, {}, BROKER, trade_start=start)
    assert run.equity.index[0] == start and run.equity.iloc[0] == 10_000
    assert run.fill_table()["time"].tolist() == [frame.index[11]]


def test_buy_and_hold_return_is_last_over_first_price_less_costs():
    frame = make_ohlcv(200, seed=5)
    run = simulate({"BTC/USDT": frame}, BuyAndHold, {}, BROKER)
    entry = min(frame["open"].iloc[1] * 1.002, frame["high"].iloc[1])
    expected = frame["close"].iloc[-1] / (entry * 1.001) - 1
    assert run.equity.iloc[-1] / 10_000 - 1 == pytest.approx(expected, rel=1e-6)
    assert len(run.fills) == 1  # no re-sizing while the target stays on the same side


def forecasts_for(frame, returns):
    return pd.DataFrame({"pred_close": frame["close"] * (1 + np.asarray(returns)),
                         "pred_return": returns}, index=frame.index)


def test_lstm_signal_enters_above_entry_and_exits_below_exit():
    frame = make_ohlcv(12)
    preds = [np.nan, 0.02, 0.005, 0.015, 0.002, -0.01, -0.02, 0.0, 0.03, 0.0, 0.0, 0.0]
    run = simulate({"BTC/USDT": frame}, LSTMSignal, {"entry": 0.01, "exit": 0.0}, BROKER,
                   forecasts={"BTC/USDT": forecasts_for(frame, preds)})
    # long at bar 1's signal (fill bar 2), hold through 0.005 (hysteresis), exit at bar 5
    # (fill 6), long again at bar 8 (fill 9); still long at the end.
    assert run.fill_table()["side"].tolist() == ["buy", "sell", "buy"]
    assert run.fill_table()["time"].tolist() == [frame.index[2], frame.index[6], frame.index[9]]
    assert run.trades[-1].open_at_end


def test_lstm_signal_short_side():
    frame = make_ohlcv(8)
    preds = [-0.02, -0.005, 0.02, 0.0, 0.0, 0.0, 0.0, 0.0]
    run = simulate({"BTC/USDT": frame}, LSTMSignal, {"entry": 0.01, "exit": 0.0, "short": True},
                   BROKER, forecasts={"BTC/USDT": forecasts_for(frame, preds)})
    fills = run.fill_table()
    assert fills["side"].tolist() == ["sell", "buy"]  # short at 0, reverse to long at 2
    assert run.position.iloc[1, 0] < 0 and run.position.iloc[3, 0] > 0
    assert fills["size"].iloc[1] == pytest.approx(2 * fills["size"].iloc[0], rel=0.05)


def test_lstm_forecast_indicator_lines_follow_the_table():
    import backtrader as bt

    from engine.simulation import feed
    from strategies.indicators import LSTMForecast

    frame = make_ohlcv(6)
    preds = [np.nan, 0.1, 0.2, 0.3, 0.4, 0.5]
    seen = []

    class Probe(bt.Strategy):
        def __init__(self):
            self.f = LSTMForecast(self.data, forecasts=forecasts_for(frame, preds))

        def next(self):
            seen.append((self.f.pred_return[0], self.f.pred_close[0]))

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feed(frame, "X"))
    cerebro.addstrategy(Probe)
    cerebro.run()
    assert np.isnan(seen[0][0])
    assert [r for r, _ in seen[1:]] == pytest.approx(preds[1:])
    assert seen[3][1] == pytest.approx(frame["close"].iloc[3] * 1.3)


def independent_sma_cross(frame, fast, slow, broker):
    """SMA crossover with plain pandas: decide at close t, fill at open t+1."""
    close = frame["close"]
    want = (close.rolling(fast).mean() > close.rolling(slow).mean()).astype(float)
    want[close.rolling(slow).mean().isna()] = np.nan
    cash, units, fees, trades, entry_cost = broker.cash, 0.0, 0.0, [], 0.0
    for t in range(len(frame) - 1):
        target, bar = want.iloc[t], frame.iloc[t + 1]
        if np.isnan(target):
            continue
        if target == 1 and units == 0:
            price = min(bar["open"] * (1 + broker.slippage), bar["high"])
            units = cash / (bar["open"] * (1 + broker.slippage) * (1 + broker.commission)) \
                * (1 - 1e-9)
            fee = units * price * broker.commission
            cash -= units * price + fee
            fees += fee
            entry_cost = units * price + fee
        elif target == 0 and units > 0:
            price = max(bar["open"] * (1 - broker.slippage), bar["low"])
            fee = units * price * broker.commission
            cash += units * price - fee
            fees += fee
            trades.append(units * price - fee - entry_cost)
            units = 0.0
    equity = cash + units * close.iloc[-1]
    if units:
        trades.append(units * close.iloc[-1] - entry_cost)
    return equity, fees, trades


@pytest.mark.parametrize(("fast", "slow", "seed"), [(5, 20, 3), (10, 30, 4), (3, 8, 6)])
def test_sma_cross_matches_an_independent_pandas_calculation(fast, slow, seed):
    frame = make_ohlcv(300, seed=seed, vol=0.04)
    run = simulate({"BTC/USDT": frame}, SMACross, {"fast": fast, "slow": slow}, BROKER)
    equity, fees, trades = independent_sma_cross(frame, fast, slow, BROKER)
    assert len(run.trades) == len(trades) > 3
    assert run.equity.iloc[-1] == pytest.approx(equity, rel=1e-9)
    assert run.fees == pytest.approx(fees, rel=1e-9)
    assert [t.pnl for t in run.trades] == pytest.approx(trades, rel=1e-6)
