"""Simple-moving-average crossover: a rule the LSTM signal has to beat."""

from __future__ import annotations

import backtrader as bt

from engine.errors import InvalidKey
from strategies.base import TargetStrategy


class SMACross(TargetStrategy):
    """Long while the fast SMA of closes is above the slow one, flat (or short) otherwise.

    Params:
        fast: Bars in the fast average. Defaults to 10.
        slow: Bars in the slow average. Defaults to 30.
        short: Go short instead of flat when fast < slow. Defaults to False.
        size: Fraction of equity per position, in (0, 1]. Defaults to 1.0.
    """

    name = "sma_cross"
    params = (("fast", 10), ("slow", 30), ("short", False), ("size", 1.0))

    def __init__(self):
        super().__init__()
        self.fast = bt.indicators.SMA(self.data.close, period=self.p.fast)
        self.slow = bt.indicators.SMA(self.data.close, period=self.p.slow)

    def target(self) -> float | None:
        if self.fast[0] > self.slow[0]:
            return self.p.size
        return -self.p.size if self.p.short else 0.0

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
