"""Cases for the fast-path parity tests, generated from the strategy registry.

Every registered strategy offering ``weights_array`` (the sweep kernel's form) is a case,
whatever its name, with its defaults (long), its short side, a size below 1 and, where its
parameters allow more than all equity, leverage 2, so a strategy joining the fast path is
checked without anyone adding it to a list.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from engine.config import BrokerConfig
from engine.errors import InvalidKey
from strategies.registry import strategies, user_params
from tests.conftest import make_ohlcv

SYMBOL = "X/USDT"
BROKERS = {"costly": BrokerConfig(cash=10_000, commission=0.001, slippage=0.002),
           "free": BrokerConfig(cash=5_000, commission=0.0, slippage=0.0),
           "leverage_2": BrokerConfig(cash=1_000, commission=0.002, slippage=0.01, leverage=2),
           # borrow interest on shorts and on negative cash, high enough to move every figure
           "borrowing": BrokerConfig(cash=1_000, commission=0.001, slippage=0.002, leverage=2,
                                     borrow_rate=0.5)}
TIMEFRAME = "1d"  # the generated bars' (series)
SEEDS = (1, 2, 3)


def fast_path_strategies() -> dict[str, type]:
    """Every registered strategy with an array form, by name."""
    return {name: cls for name, cls in strategies().items() if hasattr(cls, "weights_array")}


def variants(cls: type) -> dict[str, dict[str, Any]]:
    """Parameter sets of ``cls``: long (defaults), short, size below 1, above all equity."""
    known = user_params(cls)
    out: dict[str, dict[str, Any]] = {"long": {}}
    if "short" in known:
        out["short"] = {"short": True}
    if "size" in known:
        out["size_below_1"] = {"size": 0.5}
        if "short" in known:
            out["short_size_below_1"] = {"short": True, "size": 0.7}
    if "weights" in known:
        out["size_below_1"] = {"weights": {SYMBOL: 0.6}}
        out["above_all_equity"] = {"weights": {SYMBOL: 1.5}}
    return out


def allowed(cls: type, params: dict[str, Any], broker: BrokerConfig) -> bool:
    """Whether the strategy accepts ``params`` for one symbol under ``broker``."""
    try:
        cls.check_params({**user_params(cls), **params})
        cls.check_symbols({**user_params(cls), **params}, (SYMBOL,), broker.leverage)
    except InvalidKey:
        return False
    return True


def cases() -> list[tuple[str, str, str]]:
    """``(strategy, variant, broker)`` for every accepted combination."""
    return [(name, variant, broker)
            for name, cls in fast_path_strategies().items()
            for variant, params in variants(cls).items()
            for broker in BROKERS if allowed(cls, params, BROKERS[broker])]


def series(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generated bars and forecasts (some bars without one) of three price scales."""
    frame = make_ohlcv(300, seed=seed, price=[0, 10_000.0, 200.0, 1.5][seed])
    ret = np.random.default_rng(seed + 10).normal(0, 0.01, len(frame))
    ret[::17] = np.nan  # bars without a forecast keep what is held
    forecasts = pd.DataFrame({"pred_close": frame["close"] * (1 + ret), "pred_return": ret},
                             index=frame.index)
    return frame.iloc[:-1] if seed == 2 else frame, forecasts  # seed 2: forecasts run past
