"""Simple-moving-average crossover: a rule the LSTM signal has to beat."""

from __future__ import annotations

import backtrader as bt

from engine.errors import InvalidKey
from strategies.base import TargetStrategy


class SMACross(TargetStrategy):
    """Long while the fast SMA of closes is above the slow one, flat (or short) otherwise.

    In portfolio mode each symbol has its own averages, and the equity is split equally
    among the symbols held (see ``strategies.base``).

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
        if self.fast[data._name][0] > self.slow[data._name][0]:
            return 1.0
        return -1.0 if self.p.short else 0.0

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
