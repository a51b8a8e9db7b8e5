"""Reinforcement learning on the engine: a Gymnasium environment and agents as strategies.

The environment drives the execution core like the backtest does (decision at a close,
fill at the next open, the config's costs), sees the LSTM's normalised windows and,
optionally, the walk-forward forecasts of the same run as a backtest. Needs the ``rl``
extra (``pip install "lstm-trading-engine[rl]"``).

Example:
    >>> import gymnasium, engine.rl
    >>> env = gymnasium.make("engine/Trading-v0", config="configs/rl_btc.yaml")
    >>> obs, info = env.reset(seed=0)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from engine.config import Config, RLConfig, load_config, validate_config
from engine.data import load_market_data
from engine.errors import ConfigError
from engine.extras import require
from engine.folds import first_train_end
from engine.walkforward import run_walkforward

ENV_ID = "engine/Trading-v0"


def make_env(config: Config | str | Path, start: Any = None, end: Any = None,
             seed: int | None = None, *, market: Any = None, walkforward: Any = None,
             **settings: Any):
    """The trading environment of ``config`` over ``start`` .. ``end``.

    Args:
        config: A ``Config`` or the path of a YAML config.
        start: First bar (date, timestamp or bar number) whose close is observed; moved
            on to the first bar with a complete window (and a forecast, when observed).
            Defaults to the backtest's first traded bar (the walk-forward test start).
        end: Last bar (inclusive; a date includes that day); one after the data is the
            last bar, with a warning. Defaults to the last bar.
        seed: Seeds the first ``reset``. Defaults to None.
        market: ``engine.data.MarketData`` (or ``{symbol: frame}``) already loaded.
            Defaults to loading ``config.data``.
        walkforward: A ``WalkForwardResult`` for the forecast observation. Defaults to
            running the config's walk-forward (only when ``use_forecast`` is on).
        **settings: Override keys of the config's ``rl`` section (action_space,
            use_forecast, reward, sharpe_eta).

    Raises:
        ConfigError: Unknown setting or action space, a range shorter than a window, a
            forecast observation without a ``model:`` section.
        MissingExtra: The ``rl`` extra (gymnasium, stable-baselines3) is not installed.
    """
    require("rl", "engine.rl.make_env")
    from engine.rl.env import broker_env, env_data  # defers gymnasium (rl extra)

    cfg = config if isinstance(config, Config) else load_config(config)
    rl = rl_settings(cfg, settings)
    explicit = {"model", "forecasters"} & cfg.model_fields_set
    if rl.use_forecast and walkforward is None and not explicit:
        raise ConfigError("rl.use_forecast = true needs a model: or forecasters: section in "
                          "the config (the forecaster whose walk-forward forecasts the agent "
                          "observes); add one (see configs/btc.yaml) or set "
                          "rl.use_forecast: false")
    forecaster = cfg.forecaster(rl.forecaster)
    market = market if market is not None else load_market_data(cfg.data, progress=False)
    frames = market.frames if hasattr(market, "frames") else market
    index = next(iter(frames.values())).index
    if walkforward is None and rl.use_forecast:
        entries = cfg.model if cfg.forecasters is None else [forecaster]
        walkforward = run_walkforward(frames, entries, cfg.walkforward, None, progress=False)
    if walkforward is not None:
        first = walkforward.first_forecast_bar
    elif start is None:  # the default range is the backtest's test period
        first = first_train_end(index, cfg.walkforward,
                                max(f.window_len for f in cfg.forecaster_configs)) - 1
    else:
        first = forecaster.window_len - 1
    symbols = traded_symbols(cfg)
    forecasts = walkforward.tables(rl.forecaster) if rl.use_forecast else None
    data = env_data(forecaster, frames, symbols, forecasts, first, cfg.data.timeframe)
    env = broker_env(data, rl, cfg.broker, start, end)
    if seed is not None:
        env.reset(seed=seed)
    return env


def rl_settings(cfg: Config, overrides: Mapping[str, Any]) -> RLConfig:
    """The config's ``rl`` section with ``overrides`` applied and validated.

    Raises:
        ConfigError: An unknown key or a bad value, in one line.
    """
    if not overrides:
        return cfg.rl
    raw = cfg.to_dict()
    raw["rl"] = {**raw["rl"], **overrides}
    return validate_config(raw, label="rl settings").rl


def traded_symbols(cfg: Config) -> tuple[str, ...]:
    """The symbols of the environment's one account: every traded symbol in portfolio
    mode, else the first traded symbol."""
    return cfg.symbol_groups[0]


def write_targets(infos: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Write the targets of recorded ``step`` infos as a replay CSV (time,target or
    time,symbol,target), for ``strategies/replay.py``."""
    rows = []
    for info in infos:
        if "target" not in info:
            continue  # a reset's info
        target = info["target"]
        if isinstance(target, Mapping):
            rows += [{"time": info["decided_at"], "symbol": s, "target": w}
                     for s, w in target.items()]
        else:
            rows.append({"time": info["decided_at"], "target": target})
    path = Path(path)
    pd.DataFrame(rows).to_csv(path, index=False, float_format="%.17g")
    return path


def _register() -> None:
    try:
        import gymnasium  # optional: the rl extra
    except ImportError:  # the rl extra is not installed: nothing to register
        return
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(ENV_ID, entry_point="engine.rl:make_env",
                           disable_env_checker=False)


_register()

__all__ = ["ENV_ID", "make_env", "rl_settings", "traded_symbols", "write_targets"]
