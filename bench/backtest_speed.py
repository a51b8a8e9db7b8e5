"""Bars per second: an LSTMSignal backtest with forecasts ready vs a plain backtrader SMA.

    python bench/backtest_speed.py

Both run on the same 3,059 real daily BTC/USDT bars. The LSTMSignal run goes through the
engine (``engine.simulation.simulate``: the execution core's broker, next-open fills,
fractional sizing, equity recorder) with a precomputed forecast table; the baseline is
backtrader's textbook SMA strategy with its default broker. Each is repeated and the best
time kept. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import json

import backtrader as bt
import numpy as np
import pandas as pd
from _common import best_of, csv_data_config, machine

from engine.data import load_market_data
from engine.simulation import feed, simulate
from strategies.lstm_signal import LSTMSignal


class PlainSMA(bt.Strategy):
    params = (("period", 30),)

    def __init__(self):
        self.sma = bt.indicators.SMA(self.data.close, period=self.p.period)

    def next(self):
        if not self.position and self.data.close[0] > self.sma[0]:
            self.buy(size=0.1)
        elif self.position and self.data.close[0] < self.sma[0]:
            self.close()


def main() -> None:
    cfg = csv_data_config()
    frame = load_market_data(cfg.data, progress=False).frames["BTC/USDT"]
    rng = np.random.default_rng(0)
    returns = rng.normal(0, 0.02, len(frame))
    forecasts = pd.DataFrame({"pred_close": frame["close"] * (1 + returns),
                              "pred_return": returns}, index=frame.index)

    def lstm_signal():
        simulate({"BTC/USDT": frame}, LSTMSignal, {}, cfg.broker,
                 forecasts={"BTC/USDT": forecasts})

    def plain_sma():
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(feed(frame, "BTC/USDT"))
        cerebro.addstrategy(PlainSMA)
        cerebro.run()

    bars = len(frame)
    t_lstm, t_sma = best_of(5, lstm_signal), best_of(5, plain_sma)
    print(machine())
    print(f"bars: {bars}")
    print(f"LSTMSignal (engine, forecasts ready): {bars / t_lstm:,.0f} bars/s ({t_lstm:.3f} s)")
    print(f"plain backtrader SMA:                 {bars / t_sma:,.0f} bars/s ({t_sma:.3f} s)")
    print(f"ratio LSTMSignal / SMA speed: {t_sma / t_lstm:.2f}")
    print(json.dumps({"bars": bars, "lstm_signal_bars_per_s": round(bars / t_lstm),
                      "plain_sma_bars_per_s": round(bars / t_sma),
                      "ratio": round(t_sma / t_lstm, 3)}))


if __name__ == "__main__":
    main()
