"""Buy-and-hold: the benchmark every report compares against."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from engine.errors import InvalidKey
from strategies.base import TargetStrategy, decision_array


def side(held: float) -> float:
    """The decision rule: buy when flat, then keep whatever is held (NaN) for ever."""
    return 1.0 if held == 0 else math.nan


def entry_weights(weights: Mapping[str, float] | None,
                  symbols: Sequence[str]) -> dict[str, float]:
    """The weight each symbol is bought with: ``weights``, else equal weights."""
    return dict(weights) if weights else {s: 1.0 / len(symbols) for s in symbols}


class BuyAndHold(TargetStrategy):
    """Everything long from the first traded bar to the end, never rebalanced.

    With one symbol it holds all equity; in portfolio mode it buys every traded symbol at
    the first traded open with equal weights (or ``weights``) and never trades again: the
    rule (``side``) applied to the whole account.

    Params:
        weights: ``{symbol: weight}`` for portfolio mode, e.g. {BTC/USDT: 0.6, ETH/USDT:
            0.4}; symbols left out are not bought. Defaults to None (equal weights).
    """

    name = "buy_and_hold"
    params = (("weights", None),)

    def decide(self) -> tuple[dict[str, float], bool] | None:
        if any(math.isnan(side(self.getposition(d).size)) for d in self.datas):
            return None  # something is held: keep it
        return entry_weights(self.p.weights, [d._name for d in self.datas]), True

    @classmethod
    def weights_array(cls, params: dict, frame: pd.DataFrame,
                      forecast: pd.DataFrame | None = None, symbol: str | None = None,
                      cache: dict | None = None) -> np.ndarray:
        """``side`` at every close of one traded symbol as the sweep kernel's decision
        array: buy ``weights[symbol]`` (all equity by default) whenever flat."""
        weight = entry_weights(params.get("weights"), [symbol]).get(symbol, 0.0)
        return decision_array(side, weight, len(frame))

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
