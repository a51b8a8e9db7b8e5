"""Sweep fixtures: generated CSV candles and sweep files over a tiny base config."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from tests.conftest import make_ohlcv

BARS = 120
HOLDOUT = 25
TINY_BASE = {
    "model": {"window_len": 3, "layers": 1, "units": 2, "epochs": 1, "batch_size": 32},
    "walkforward": {"train_bars": 40, "retrain_every": 30, "finetune_epochs": 1},
    "strategies": [{"name": "sma_cross", "fast": 3, "slow": 10}, "lstm_signal"],
    "backtest": {"symbols": ["BTC/USDT"]},
}


def write_candles(folder: Path, holdout_shock: float | None = None) -> dict[str, str]:
    """CSV files of BTC/USDT and ETH/USDT; ``holdout_shock`` rescales the holdout bars."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for symbol, seed, price in (("BTC/USDT", 1, 10_000.0), ("ETH/USDT", 2, 200.0)):
        frame = make_ohlcv(BARS, seed=seed, price=price)
        if holdout_shock is not None:
            tail = frame.index[-HOLDOUT:]
            factor = pd.Series(holdout_shock ** (1 + pd.RangeIndex(HOLDOUT) / HOLDOUT),
                               index=tail)
            frame.loc[tail, ["open", "high", "low", "close"]] = \
                frame.loc[tail, ["open", "high", "low", "close"]].mul(factor, axis=0)
        path = folder / f"{symbol.replace('/', '-')}.csv"
        frame.to_csv(path)
        paths[symbol] = str(path)
    return paths


def sweep_dict(csv: dict[str, str], out: Path, **changes) -> dict:
    """A sweep over sma_cross's two lengths (2 x 2 grid) on the tiny base config."""
    base = {"data": {"symbols": ["BTC/USDT", "ETH/USDT"], "start": "2020-01-01", "csv": csv,
                     "cache_dir": str(out.parent / "cache")},  # the model store: cache/models
            **TINY_BASE}
    sweep = {"base": base,
             "space": {"strategies.sma_cross.fast": [2, 4],
                       "strategies.sma_cross.slow": [8, 12]},
             "objective": {"metric": "sharpe", "strategy": "sma_cross"},
             "split": {"holdout_bars": HOLDOUT}, "output_dir": str(out)}
    sweep.update(changes)
    return sweep


def write_sweep(path: Path, sweep: dict) -> Path:
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path
