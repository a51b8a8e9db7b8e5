"""Simple-moving-average crossover: a rule the LSTM signal has to beat."""

from __future__ import annotations

import math

import backtrader as bt
import numpy as np
import pandas as pd

from engine.errors import InvalidKey
from strategies.base import TargetStrategy, decision_array, side_or_keep
from strategies.indicators import sma_array


def side(fast: float, slow: float, short: bool, held: float) -> float:
    """The decision rule: long while the fast average is above the slow one, else flat
    (short with ``short``); NaN (keep) until both averages have their bars. ``held`` (the
    side held) does not matter to this rule."""
    if math.isnan(fast) or math.isnan(slow):
        return math.nan
    if fast > slow:
        return 1.0
    return -1.0 if short else 0.0


class SMACross(TargetStrategy):
    """Long while the fast SMA of closes is above the slow one, flat (or short) otherwise.

    In portfolio mode each symbol has its own averages, and the equity is split equally
    among the symbols held (see ``strategies.base``). The rule is ``side``.

    Params:
        fast: Bars in the fast average. Defaults to 10.
        slow: Bars in the slow average. Defaults to 30.
        short: Go short instead of flat when fast < slow. Defaults to False.
        size: Fraction of equity in the market, in (0, 1]. Defaults to 1.0.
    """

    name = "sma_cross"
    params = (("fast", 10), ("slow", 30), ("short", False), ("size", 1.0))

    def __init__(self):
        self.fast = {d._name: bt.indicators.SMA(d.close, period=self.p.fast) for d in self.datas}
        self.slow = {d._name: bt.indicators.SMA(d.close, period=self.p.slow) for d in self.datas}

    def signal(self, data) -> float | None:
        return side_or_keep(side(self.fast[data._name][0], self.slow[data._name][0],
                                 self.p.short, self.getposition(data).size))

    @classmethod
    def weights_array(cls, params: dict, frame: pd.DataFrame,
                      forecast: pd.DataFrame | None = None, symbol: str | None = None,
                      cache: dict | None = None) -> np.ndarray:
        """``side`` at every close of one symbol as the sweep kernel's decision array.

        ``cache`` (a dict kept by the caller for one frame) keeps each average across
        calls: an average of one length serves every parameter set that uses it.

        Returns:
            ``(len(frame), 3)`` target weights wanted at each close when flat / long /
            short, NaN before the slow average has its bars (see
            ``engine.execution.kernel``).
        """
        p = {**dict(cls.params._getitems()), **params}
        cache = {} if cache is None else cache
        averages = []
        for period in (p["fast"], p["slow"]):
            key = ("sma", int(period))
            if key not in cache:
                cache[key] = sma_array(frame["close"].to_numpy(), int(period))
            averages.append(cache[key])
        return decision_array(side, p["size"], len(frame), tuple(averages), (bool(p["short"]),))

    @classmethod
    def check_params(cls, params: dict) -> None:
        fast, slow = params.get("fast", 10), params.get("slow", 30)
        if fast < 1:
            raise InvalidKey(("fast",), fast, "must be >= 1")
        if slow <= fast:
            raise InvalidKey(("slow",), slow, f"must be greater than fast ({fast})")
        size = params.get("size", 1.0)
        if not 0 < size <= 1:
            raise InvalidKey(("size",), size, "is not in (0, 1]")

    @classmethod
    def warmup_bars(cls, params: dict) -> int:
        return int(params.get("slow", 30))
