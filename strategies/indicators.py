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

    Each value is the window's ``math.fsum`` (its exactly rounded sum) divided by
    ``period``, as ``bt.indicators.SMA`` computes it, so decisions on crossings match bit
    for bit. The sums roll: the window's exact sum is kept as non-overlapping partials
    (Shewchuk's algorithm, which ``math.fsum`` uses), the bar entering added and the bar
    leaving subtracted exactly, then rounded as ``math.fsum`` rounds, in one compiled pass
    (the sweep's fast path computes many averages; numba is in its extra).
    """
    values = np.ascontiguousarray(close, dtype="float64")
    if len(values) and not np.isfinite(values).all():  # partials need finite values
        out = np.full(len(values), np.nan)
        items = values.tolist()
        for i in range(period - 1, len(items)):
            out[i] = math.fsum(items[i - period + 1:i + 1]) / period
        return out
    if "rolling" not in _COMPILED:
        from numba import njit  # defers numba (sweep extra)

        _COMPILED["add"] = add = njit(_add_exact)
        _COMPILED["rounded"] = rounded = njit(_rounded)
        _COMPILED["rolling"] = njit(_rolling_mean_of(add, rounded))
    return _COMPILED["rolling"](values, int(period))


_COMPILED: dict = {}  # sma_array's compiled functions


def _add_exact(partials: np.ndarray, count: int, x: float) -> int:
    """Add ``x`` to the exact sum held in ``partials[:count]``; returns the new count
    (``math.fsum``'s inner loop: the partials stay non-overlapping, smallest first)."""
    i = 0
    for j in range(count):
        y = partials[j]
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            partials[i] = lo
            i += 1
        x = hi
    if x != 0.0:
        partials[i] = x
        i += 1
    return i


def _rounded(partials: np.ndarray, count: int) -> float:
    """The exact sum in ``partials[:count]`` rounded to a float as ``math.fsum`` rounds."""
    if count == 0:
        return 0.0
    n = count - 1
    hi = partials[n]
    lo = 0.0
    while n > 0:
        x = hi
        n -= 1
        y = partials[n]
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            break
    if n > 0 and ((lo < 0.0 and partials[n - 1] < 0.0) or (lo > 0.0 and partials[n - 1] > 0.0)):
        y = lo * 2.0
        x = hi + y
        if y == x - hi:
            hi = x
    return hi


def _rolling_mean_of(add, rounded):
    """The rolling exact mean over the compiled ``add`` and ``rounded``."""

    def rolling(values, period):
        out = np.full(len(values), np.nan)
        partials = np.zeros(64)  # non-overlapping partials of finite floats: at most ~40
        count = 0
        for i in range(len(values)):
            count = add(partials, count, values[i])
            if i >= period:
                count = add(partials, count, -values[i - period])
            if i >= period - 1:
                out[i] = rounded(partials, count) / period
        return out

    return rolling


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
