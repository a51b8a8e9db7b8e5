"""Portfolio mode: several symbols, one account, one cash balance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.config import BrokerConfig, validate_config
from engine.errors import ConfigError
from engine.simulation import PORTFOLIO, simulate
from strategies.buy_and_hold import BuyAndHold
from strategies.lstm_signal import LSTMSignal
from strategies.registry import check_config
from tests.conftest import config_dict, make_ohlcv

BROKER = BrokerConfig(cash=10_000, commission=0.001, slippage=0.002)


@pytest.fixture
def frames():
    return {"A/USDT": make_ohlcv(60, seed=1, price=100.0),
            "B/USDT": make_ohlcv(60, seed=2, price=20.0)}


def test_portfolio_buy_and_hold_is_equal_weights_bought_once(frames):
    start = frames["A/USDT"].index[5]
    run = simulate(frames, BuyAndHold, {}, BROKER, trade_start=start)
    assert run.symbol == PORTFOLIO and len(run.fills) == 2
    # By hand: at bar 6's open each symbol gets half of 10,000, slippage (capped to the
    # high) and fee included, and nothing is traded again.
    units = {}
    for symbol, frame in frames.items():
        open_ = frame["open"].iloc[6]
        price = min(open_ * 1.002, frame["high"].iloc[6])
        units[symbol] = 0.5 * 10_000 / (open_ * 1.002 * 1.001) * (1 - 1e-9)
        fill = run.fill_table()[run.fill_table()["symbol"] == symbol].iloc[0]
        assert fill["size"] == pytest.approx(units[symbol], rel=1e-12)
        assert fill["price"] == pytest.approx(price, rel=1e-12)
    cash = 10_000 - run.fees - sum(run.fill_table()["value"])
    expected = cash + sum(units[s] * frames[s]["close"] for s in frames)
    # the first traded close (bar 5) is all cash; bars 6.. hold both
    np.testing.assert_allclose(run.equity.to_numpy(), np.r_[10_000, expected.iloc[6:]],
                               rtol=1e-9)
    shares = {s: c["pnl"] for s, c in run.contributions.items()}
    assert sum(shares.values()) == pytest.approx(run.equity.iloc[-1] - 10_000, rel=1e-9)


def test_portfolio_buy_and_hold_with_weights(frames):
    run = simulate(frames, BuyAndHold, {"weights": {"A/USDT": 0.75}}, BROKER)
    assert run.fill_table()["symbol"].tolist() == ["A/USDT"]
    assert run.fill_table()["value"].iloc[0] + run.fees == pytest.approx(7_500, rel=1e-6)


def test_lstm_signal_splits_equity_equally_among_the_symbols_it_holds(frames):
    index = frames["A/USDT"].index
    a = np.full(len(index), -0.01)
    b = np.full(len(index), -0.01)
    a[10:40] = 0.01  # A long from bar 10's close (fill at 11) to bar 40's (fill at 41)
    b[20:30] = 0.01  # B long from bar 20 (fill at 21) to bar 30 (fill at 31)
    returns = {"A/USDT": a, "B/USDT": b}
    tables = {s: pd.DataFrame({"pred_close": f["close"] * (1 + returns[s]),
                               "pred_return": returns[s]}, index=index)
              for s, f in frames.items()}
    run = simulate(frames, LSTMSignal, {}, BROKER, forecasts=tables)
    pos = run.position
    value = pos * pd.DataFrame({s: f["close"] for s, f in frames.items()})
    weight = value.div(run.equity, axis=0)
    assert weight["A/USDT"].iloc[15] == pytest.approx(1.0, abs=0.01)  # A alone: all equity
    assert weight["A/USDT"].iloc[21] == pytest.approx(0.5, abs=0.03)  # both: half each
    assert weight["B/USDT"].iloc[21] == pytest.approx(0.5, abs=0.03)
    assert weight["A/USDT"].iloc[31] == pytest.approx(1.0, abs=0.01)  # B left: A back to all
    assert pos.iloc[41:].abs().sum().sum() == 0
    assert run.fill_table()["time"].min() == index[11]
    assert (run.equity > 0).all() and run.fees > 0


def test_portfolio_config_errors_are_one_line(tmp_path):
    base = config_dict(tmp_path, backtest={"symbols": ["BTC/USDT"], "portfolio": True})
    with pytest.raises(ConfigError, match="backtest.portfolio = True needs at least two"):
        validate_config(base)
    bad = config_dict(tmp_path, backtest={"portfolio": True},
                      strategies=[{"name": "buy_and_hold", "weights": {"SOL/USDT": 0.5}}])
    with pytest.raises(ConfigError, match=r"strategies\[0\].weights\[SOL/USDT\] = 0.5 is a "
                                          "weight for a symbol that is not traded"):
        check_config(validate_config(bad))  # strategies are checked where they are built
    over = config_dict(tmp_path, backtest={"portfolio": True}, strategies=[
        {"name": "buy_and_hold", "weights": {"BTC/USDT": 0.8, "ETH/USDT": 0.7}}])
    with pytest.raises(ConfigError, match="adds up to 1.5, more than broker.leverage = 1"):
        check_config(validate_config(over))
    over["broker"] = {"leverage": 2}
    check_config(validate_config(over))
    assert validate_config(over).broker.leverage == 2
