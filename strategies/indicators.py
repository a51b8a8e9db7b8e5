"""Backtrader indicators over precomputed model output."""

from __future__ import annotations

import math

import backtrader as bt
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
        self._by_time = dict(zip(index.to_pydatetime(), values, strict=True))

    def next(self):
        close, ret = self._by_time.get(self.data.datetime.datetime(0), (math.nan, math.nan))
        self.lines.pred_close[0] = close
        self.lines.pred_return[0] = ret
