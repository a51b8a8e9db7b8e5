"""The fast path: trials that change only strategy parameters run on the numba kernel.

When every key of a sweep's space is a strategy parameter (``strategies.NAME.PARAM``), the
forecasts are the same in every trial, so a trial only has to replay the objective
strategy's decisions on fixed forecasts. Its strategy gives them as an array
(``weights_array``), and ``engine.execution.kernel`` trades them with the execution core's
rules for one symbol; ``tests/engine/execution/test_kernel.py`` pins the kernel to the
backtrader driver, and the sweep tests pin a trial's metrics to the backtrader path's.

Not covered, so run on backtrader as before: portfolio mode, objective strategies
without ``weights_array``, and sweep files with ``fast_path: false``. The holdout run of
the chosen config always uses backtrader (it also writes the full run's trades and fills).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from engine.config import Config
from engine.data import MarketData
from engine.simulation import StrategyRun, cost_model
from engine.sweep.spec import Objective, SweepSpec
from strategies.registry import get_strategy, resolve_params, spec_label

_CACHE: dict[str, Any] = {"key": None, "arrays": {}}  # per-frame averages across trials


def uses_fast_path(spec: SweepSpec) -> bool:
    """Whether ``spec``'s trials run on the kernel (see the module docstring)."""
    if not spec.raw.fast_path or not all(key.startswith("strategies.") for key in spec.keys):
        return False
    if spec.base.backtest.portfolio:
        return False
    strategy = get_strategy(spec.objective.strategy)
    return hasattr(strategy, "weights_array")


def objective_run(cfg: Config, market: MarketData, wf: Any, objective: Objective,
                  data_key: str) -> tuple[StrategyRun, list[dict[str, Any]]]:
    """The objective strategy's run on its symbol, traded by the kernel.

    Args:
        cfg: The trial's config.
        market: The selection period's data.
        wf: The walk-forward result whose forecasts the strategy reads.
        objective: The metric scored (its strategy and symbol).
        data_key: Names ``market``'s data, so indicator arrays are reused across trials.

    Returns:
        ``(run, trades)``: the run (equity, positions, fees; no fills) and its round trips
        with the fields the trade metrics read (pnl, bars_held).
    """
    from engine.execution.kernel import run as run_kernel

    spec = next(s for s in cfg.strategies if s.name == objective.strategy)
    traded = cfg.traded_symbols
    symbol = objective.symbol if objective.symbol in traded else traded[0]
    frame = market.frames[symbol]
    cls = get_strategy(spec.name)
    params = resolve_params(spec.name, spec.params)
    arrays = _arrays(f"{data_key}/{symbol}")
    weights = cls.weights_array(params, frame, wf.forecasts.get(symbol), symbol, arrays)
    broker = cfg.broker
    result = run_kernel(frame, weights, wf.first_forecast_bar, broker.cash,
                        cost_model(broker), broker.leverage)
    index = _index(market.index, wf.first_forecast_bar, arrays)
    run = StrategyRun(spec_label(spec), symbol, pd.Series(result.equity, index, name="equity"),
                      pd.DataFrame({symbol: result.position}, index=index),
                      pd.DataFrame(), fees=result.fees)
    trades = [{"pnl": float(p), "bars_held": int(b)}
              for p, b in zip(result.trade_pnl, result.trade_bars, strict=True)]
    return run, trades


def _index(index: pd.DatetimeIndex, start: int, arrays: dict) -> pd.DatetimeIndex:
    """The recorded bars as ``simulate`` indexes them (same name and resolution), so a
    trial's saved returns are the same whichever path ran it."""
    key = ("index", start)
    if key not in arrays:
        naive = index[start:].tz_convert("UTC").tz_localize(None).to_pydatetime()
        arrays[key] = pd.DatetimeIndex(list(naive), name="timestamp").tz_localize("UTC")
    return arrays[key]


def _arrays(key: str) -> dict:
    if _CACHE["key"] != key:
        _CACHE["key"], _CACHE["arrays"] = key, {}
    return _CACHE["arrays"]


def warm_up() -> None:
    """Compile the kernel (or load it from numba's cache) before timing or trials."""
    from engine.execution.kernel import run_kernel

    bars = np.ones(3)
    run_kernel(bars, bars, bars, bars, np.full((3, 3), np.nan), 0, 1.0, 0.0, 0.0, 1.0)
