"""Single-symbol backtests give the results they gave on backtrader's own broker.

``golden_backtrader_broker.json`` holds equity curves, positions, fills, fees and trade
P&L recorded with backtrader's BackBroker (cheat-on-open fills, percentage commission,
slippage capped to the bar) before fills moved into the execution core. The core must
reproduce them to 1e-9.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.config import BrokerConfig
from engine.simulation import simulate
from strategies.buy_and_hold import BuyAndHold
from strategies.lstm_signal import LSTMSignal
from strategies.sma_cross import SMACross
from tests.conftest import make_ohlcv

GOLDEN = json.loads((Path(__file__).with_name("golden_backtrader_broker.json")).read_text())
BROKER = BrokerConfig(cash=10_000, commission=0.001, slippage=0.002)
CASES = {
    "buy_and_hold": (BuyAndHold, {}),
    "lstm_signal": (LSTMSignal, {"entry": 0.002, "exit": -0.001}),
    "lstm_signal_short": (LSTMSignal, {"entry": 0.004, "exit": 0.0, "short": True, "size": 0.7}),
    "sma_cross": (SMACross, {"fast": 5, "slow": 20}),
    "sma_cross_short": (SMACross, {"fast": 3, "slow": 12, "short": True}),
}


def _inputs(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = make_ohlcv(300, seed=seed, price=[0, 10_000.0, 200.0, 1.5][seed])
    ret = np.random.default_rng(seed + 10).normal(0, 0.01, len(frame))
    forecasts = pd.DataFrame({"pred_close": frame["close"] * (1 + ret), "pred_return": ret},
                             index=frame.index)
    return frame, forecasts


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_results_match_the_backtrader_broker(case, seed):
    frame, forecasts = _inputs(seed)
    cls, params = CASES[case]
    run = simulate({"X/USDT": frame}, cls, params, BROKER, trade_start=frame.index[40],
                   forecasts={"X/USDT": forecasts})
    want = GOLDEN[f"{case}/{seed}"]
    np.testing.assert_allclose(run.equity.to_numpy(), want["equity"], rtol=1e-9)
    np.testing.assert_allclose(run.position["X/USDT"].to_numpy(), want["position"], rtol=1e-9,
                               atol=1e-12)
    assert run.fees == pytest.approx(want["fees"], rel=1e-9)
    assert len(run.trades) == want["n_trades"]
    np.testing.assert_allclose([t.pnl for t in run.trades], want["trade_pnl"], rtol=1e-9)
    np.testing.assert_allclose(run.fill_table()["price"], want["fill_price"], rtol=1e-12)
    np.testing.assert_allclose(run.fill_table()["size"], want["fill_size"], rtol=1e-9)
    assert [t.isoformat() for t in run.fill_table()["time"]] == want["fill_time"]
