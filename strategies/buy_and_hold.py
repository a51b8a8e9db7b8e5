"""Buy-and-hold: the benchmark every report compares against."""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.errors import InvalidKey
from strategies.base import TargetStrategy


class BuyAndHold(TargetStrategy):
    """Everything long from the first traded bar to the end, never rebalanced.

    With one symbol it holds all equity; in portfolio mode it buys every traded symbol at
    the first traded open with equal weights (or ``weights``) and never trades again.

    Params:
        weights: ``{symbol: weight}`` for portfolio mode, e.g. {BTC/USDT: 0.6, ETH/USDT:
            0.4}; symbols left out are not bought. Defaults to None (equal weights).
    """

    name = "buy_and_hold"
    params = (("weights", None),)

    def decide(self) -> tuple[dict[str, float], bool] | None:
        if any(self.getposition(d).size for d in self.datas):
            return None
        names = [d._name for d in self.datas]
        weights = self.p.weights or {s: 1.0 / len(names) for s in names}
        return dict(weights), True

    @classmethod
    def weights_array(cls, params: dict, frame: pd.DataFrame,
                      forecast: pd.DataFrame | None = None, symbol: str | None = None,
                      cache: dict | None = None) -> np.ndarray:
        """The decisions of ``decide()`` for one traded symbol as the sweep kernel's array:
        buy ``weights[symbol]`` (all equity by default) whenever flat, never trade again."""
        weights = params.get("weights")
        weight = 1.0 / 1 if not weights else weights.get(symbol, 0.0)
        out = np.full((len(frame), 3), np.nan)
        out[:, 0] = weight
        return out

    @classmethod
    def check_params(cls, params: dict) -> None:
        weights = params.get("weights")
        if weights is None:
            return
        if not isinstance(weights, dict) or not weights:
            raise InvalidKey(("weights",), weights, "must be a mapping {symbol: weight}")
        for symbol, weight in weights.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
                raise InvalidKey(("weights", symbol), weight, "must be a number >= 0")

    @classmethod
    def check_symbols(cls, params: dict, symbols: tuple[str, ...], leverage: float) -> None:
        weights = params.get("weights") or {}
        for symbol in weights:
            if symbol not in symbols:
                raise InvalidKey(("weights", symbol), weights[symbol],
                                 f"is a weight for a symbol that is not traded (traded: "
                                 f"{', '.join(symbols)}); add it to backtest.symbols or "
                                 "remove the weight")
        total = sum(weights.values())
        if total > leverage + 1e-9:
            raise InvalidKey(("weights",), weights,
                             f"adds up to {total:g}, more than broker.leverage = {leverage:g};"
                             " lower the weights or raise broker.leverage")
