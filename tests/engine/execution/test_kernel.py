"""The sweep kernel gives the backtrader driver's results for every array-form strategy.

``engine.execution.kernel`` re-implements the account's rules for one symbol in numba;
these tests pin it to ``engine.simulation.simulate`` (equity to 1e-9 relative, fees, fills
and round trips) on generated data with warm-up bars before the traded period.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.config import BrokerConfig
from engine.execution import CostModel
from engine.execution.kernel import run
from engine.simulation import simulate
from strategies.buy_and_hold import BuyAndHold
from strategies.indicators import sma_array
from strategies.lstm_signal import LSTMSignal
from strategies.sma_cross import SMACross
from tests.conftest import make_ohlcv

SYMBOL = "X/USDT"
CASES = [
    (BuyAndHold, {}),
    (BuyAndHold, {"weights": {SYMBOL: 0.6}}),
    (LSTMSignal, {}),
    (LSTMSignal, {"entry": 0.002, "exit": -0.001}),
    (LSTMSignal, {"entry": 0.004, "exit": 0.0, "short": True, "size": 0.7}),
    (LSTMSignal, {"entry": 0.001, "exit": -0.003, "short": True}),
    (SMACross, {"fast": 5, "slow": 20}),
    (SMACross, {"fast": 3, "slow": 12, "short": True, "size": 0.5}),
    (SMACross, {"fast": 10, "slow": 60, "short": True}),  # warm-up longer than trade_start
]
BROKERS = [BrokerConfig(cash=10_000, commission=0.001, slippage=0.002),
           BrokerConfig(cash=5_000, commission=0.0, slippage=0.0),
           BrokerConfig(cash=1_000, commission=0.002, slippage=0.01)]


def _inputs(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = make_ohlcv(300, seed=seed, price=[0, 10_000.0, 200.0, 1.5][seed])
    ret = np.random.default_rng(seed + 10).normal(0, 0.01, len(frame))
    ret[::17] = np.nan  # bars without a forecast keep what is held
    forecasts = pd.DataFrame({"pred_close": frame["close"] * (1 + ret), "pred_return": ret},
                             index=frame.index)
    return frame.iloc[:-1] if seed == 2 else frame, forecasts  # seed 2: forecasts run past


@pytest.mark.parametrize("broker", range(len(BROKERS)))
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("case", range(len(CASES)), ids=lambda i: CASES[i][0].name + str(i))
def test_kernel_equity_equals_the_backtrader_run(case, seed, broker):
    cls, params = CASES[case]
    cfg = BROKERS[broker]
    frame, forecasts = _inputs(seed)
    start = 40
    bt_run = simulate({SYMBOL: frame}, cls, params, cfg, trade_start=frame.index[start],
                      forecasts={SYMBOL: forecasts})
    weights = cls.weights_array(params, frame, forecasts, SYMBOL)
    fast = run(frame, weights, start, cfg.cash, CostModel(cfg.commission, cfg.slippage),
               cfg.leverage)
    assert len(bt_run.fills) > 0
    np.testing.assert_allclose(fast.equity, bt_run.equity.to_numpy(), rtol=1e-9, atol=0)
    assert fast.fees == pytest.approx(bt_run.fees, rel=1e-9, abs=1e-12)
    assert fast.fills == len(bt_run.fills)
    assert fast.trades == len(bt_run.trades)
    np.testing.assert_allclose(fast.trade_pnl, [t["pnl"] for t in bt_run.trades], rtol=1e-9,
                               atol=1e-9 * cfg.cash)
    assert list(fast.trade_bars) == [t["bars_held"] for t in bt_run.trades]
    np.testing.assert_allclose(fast.position, bt_run.position[SYMBOL].to_numpy(), rtol=1e-9,
                               atol=1e-12)


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


def test_a_decision_on_the_last_bar_is_not_filled():
    frame = make_ohlcv(10, seed=1)
    weights = np.full((10, 3), np.nan)
    weights[-1, 0] = 1.0
    result = run(frame, weights, 0, 100.0, CostModel(0.001, 0.0))
    assert result.fills == 0 and result.trades == 0
    assert (result.equity == 100.0).all()
