"""Backtrader indicators over precomputed model output."""

from __future__ import annotations

import math

import backtrader as bt
import numpy as np
import pandas as pd


class LSTMForecast(bt.Indicator):
    """The walk-forward forecast for each bar, as indicator lines.

    At bar t the lines hold the forecast made from bars <= t of the close of bar t + 1
    (``pred_close``) and the return it implies over the close of bar t (``pred_return``).
    Bars without a forecast (before the first fold) hold NaN.

    Params:
        forecasts: DataFrame indexed by bar timestamp (UTC) with columns ``pred_close`` and
            ``pred_return`` for this data feed's symbol.
    """

    lines = ("pred_close", "pred_return")
    params = (("forecasts", None),)
    plotinfo = {"subplot": True}

    def __init__(self):
        table = self.p.forecasts
        if table is None:
            table = pd.DataFrame(columns=["pred_close", "pred_return"])
        index = pd.DatetimeIndex(table.index)
        if index.tz is not None:
            index = index.tz_convert("UTC").tz_localize(None)  # backtrader datetimes are naive UTC
        values = zip(table["pred_close"], table["pred_return"], strict=True)
        # Keyed by backtrader's own date number, the float each bar's datetime line holds.
        self._by_num = dict(zip(map(bt.date2num, index.to_pydatetime()), values, strict=True))

    def next(self):
        close, ret = self._by_num.get(self.data.datetime[0], (math.nan, math.nan))
        self.lines.pred_close[0] = close
        self.lines.pred_return[0] = ret

    def once(self, start, end):
        times = self.data.datetime.array
        closes, returns = self.lines.pred_close.array, self.lines.pred_return.array
        missing = (math.nan, math.nan)
        for i in range(start, end):
            closes[i], returns[i] = self._by_num.get(times[i], missing)


def sma_array(close: np.ndarray, period: int) -> np.ndarray:
    """Backtrader's SMA of ``close`` as an array: NaN until ``period`` bars are in.

    Each value is ``math.fsum`` of the window divided by ``period``, exactly as
    ``bt.indicators.SMA`` computes it, so decisions on crossings match bit for bit.
    """
    values = [float(v) for v in close]
    out = np.full(len(values), np.nan)
    for i in range(period - 1, len(values)):
        out[i] = math.fsum(values[i - period + 1:i + 1]) / period
    return out


def forecast_returns(table: pd.DataFrame | None, index: pd.DatetimeIndex) -> np.ndarray:
    """``pred_return`` of a forecast table at each bar of ``index`` (NaN where missing),
    the values ``LSTMForecast`` gives its strategy."""
    if table is None or table.empty:
        return np.full(len(index), np.nan)
    series = table["pred_return"].astype("float64")
    series = series[~series.index.duplicated(keep="last")]
    if series.index.tz is None:
        series.index = series.index.tz_localize("UTC")
    return series.reindex(index.tz_convert("UTC")).to_numpy()
