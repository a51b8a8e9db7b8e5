"""The fast path: trials that change only strategy parameters run on the numba kernel.

When every key of a sweep's space is a strategy parameter (``strategies.NAME.PARAM``), the
forecasts are the same in every trial, so a trial only has to replay the objective
strategy's decisions on fixed forecasts. Its strategy gives them as an array
(``weights_array``), and ``engine.execution.kernel`` trades them with the execution core's
rules for one symbol; ``tests/engine/execution/test_kernel.py`` pins the kernel to the
backtrader driver, and the sweep tests pin a trial's metrics to the backtrader path's.

What does not change between trials is computed once per process and kept while trials
read the same data: the bars as NumPy arrays (``kernel.prices``), each indicator array a
strategy's ``weights_array`` caches (a moving average of one length serves every trial
that uses that length) and the recorded bars' index.

Not covered, so run on backtrader as before: portfolio mode, objective strategies
without ``weights_array``, and sweep files with ``fast_path: false``. The holdout run of
the chosen config always uses backtrader (it also writes the full run's trades and fills).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from engine.config import Config
from engine.data import MarketData
from engine.execution import StrategyRun, borrow_per_bar, cost_model
from engine.pipeline import strategy_forecasts
from engine.sweep.spec import Objective, SweepSpec
from strategies.registry import get_strategy, resolve_params, spec_label

_CACHE: dict[str, Any] = {"key": None, "arrays": {}}  # per-frame arrays across trials


def uses_fast_path(spec: SweepSpec) -> bool:
    """Whether ``spec``'s trials run on the kernel (see the module docstring)."""
    if not spec.raw.fast_path or not all(key.startswith("strategies.") for key in spec.keys):
        return False
    if spec.base.backtest.portfolio:
        return False
    strategy = get_strategy(spec.objective.strategy)
    return hasattr(strategy, "weights_array")


def objective_run(cfg: Config, market: MarketData, wf: Any, objective: Objective,
                  data_key: str) -> tuple[StrategyRun, Any]:
    """The objective strategy's run on its symbol, traded by the kernel.

    Args:
        cfg: The trial's config.
        market: The selection period's data.
        wf: The walk-forward result whose forecasts the strategy reads.
        objective: The metric scored (its strategy and symbol).
        data_key: Names ``market``'s data, so arrays are reused across trials.

    Returns:
        ``(run, kernel_run)``: the run (equity, positions, fees; its fills and round trips
        stay in ``kernel_run`` as arrays, which is all a trial scores) and the kernel's
        ``KernelRun`` (``fill_records`` and ``round_trips`` give them as records).
    """
    from engine.execution import kernel  # defers numba (sweep extra)

    spec = next(s for s in cfg.strategies if s.name == objective.strategy)
    traded = cfg.traded_symbols
    symbol = objective.symbol if objective.symbol in traded else traded[0]
    frame = market.frames[symbol]
    cls = get_strategy(spec.name)
    params = resolve_params(spec.name, spec.params)
    arrays = _arrays(f"{data_key}/{symbol}")
    if "prices" not in arrays:
        arrays["prices"] = kernel.prices(frame)
    forecasts = strategy_forecasts(cls, params, cfg, wf).get(symbol)
    weights = cls.weights_array(params, frame, forecasts, symbol, arrays)
    broker = cfg.broker
    result = kernel.run(arrays["prices"], weights, wf.first_forecast_bar, broker.cash,
                        cost_model(broker), broker.leverage,
                        borrow_per_bar(broker, cfg.data.timeframe))
    index = _index(market.index, wf.first_forecast_bar, arrays)
    run = StrategyRun(spec_label(spec), symbol, pd.Series(result.equity, index, name="equity"),
                      pd.DataFrame({symbol: result.position}, index=index), fees=result.fees,
                      borrow=result.borrow, funding=result.funding)
    return run, result


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
    """Compile the kernel before timing or trials."""
    from engine.execution import kernel  # defers numba (sweep extra)

    kernel.warm_up()
