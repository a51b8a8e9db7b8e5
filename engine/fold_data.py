"""What each fold of a forecaster reads and makes: its scaled windows, its store key, and
its forecasts as tables.

- ``fold_inputs``: a fold's training windows (complete, with a known target) and the
  windows it forecasts from, both through a scaler fit on the training windows only;
  the ``direction`` target's return scale and a neural ``log_return`` target's
  standardisation, both from the training windows too;
- ``fold_keys``: the model store key of every fold (see ``engine.models_store``);
- ``forecast_tables``: model outputs -> one table per symbol of predicted closes and
  returns, indexed by the bar each forecast was made at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from engine.config import ModelConfig, WalkForwardConfig, forecaster_from_model
from engine.folds import FoldPlan
from engine.models_store import fold_key, rows_digest, windows_digest
from models.features import Scaler, Windows, direction_scale, scaled, split_features, to_prices
from models.kinds import ensemble_format, warm_starts
from models.runtime import runtime


@dataclass(frozen=True)
class FoldInputs:
    """One fold's training and forecast windows (scaled by the fold's scaler)."""

    train: Windows
    ahead: Windows
    scale: np.ndarray  # (symbols,) the direction target's return scale (1 otherwise)
    digest: str
    y_mean: np.ndarray | float = 0.0  # a neural log_return target is trained standardised:
    y_std: np.ndarray | float = 1.0  # (y - y_mean) / y_std, fit on the training windows

    @property
    def train_y(self) -> np.ndarray:
        """The targets the model is trained on."""
        return (self.train.y - self.y_mean) / self.y_std

    def outputs(self, model: Any, windows: Windows) -> np.ndarray:
        """``model``'s (members, windows, symbols) forecasts of the target for ``windows``."""
        return model.predict_members(windows.X) * self.y_std + self.y_mean


def fold_inputs(windows: Windows, plan: FoldPlan, fc: Any,
                frames: Mapping[str, pd.DataFrame]) -> FoldInputs:
    """A fold's training windows (complete, with a known target: target bar <
    train_end) and forecast windows, both scaled by a scaler fit on the training ones."""
    w = fc.window_len
    train = windows.select((windows.end >= plan.train_start + w - 1)
                           & (windows.end <= plan.train_end - 2))
    ahead = windows.select((windows.end >= plan.forecast_start)
                           & (windows.end < plan.forecast_end))
    scaler = Scaler.fit(train)
    train, ahead = scaled(train, scaler), scaled(ahead, scaler)
    scale = np.ones(train.y.shape[1])
    if fc.resolved_target == "direction" and len(train):
        closes = np.column_stack([f["close"].to_numpy("float64") for f in frames.values()])
        scale = direction_scale(train, closes)
    fold = FoldInputs(train, ahead, scale, windows_digest(ahead.X))
    if warm_starts(fc.kind) and fc.resolved_target == "log_return" and len(train) > 1:
        # One-bar log returns are ~100 times smaller than a network's initial outputs:
        # standardised, they train in as few epochs as the tutorial's window ratios.
        std = train.y.std(axis=0)
        fold = replace(fold, y_mean=train.y.mean(axis=0), y_std=np.where(std > 0, std, 1.0))
    return fold


def key_settings(fc: Any) -> dict[str, Any]:
    """The settings that make up a forecaster's store key (its name is not among them).

    An lstm forecaster with the window_ratio target, raw features and one seed is keyed
    by exactly the fields of a ``model:`` section, so a ``model:`` config and the same
    forecaster written under ``forecasters:`` share their stored folds.
    """
    settings = fc.model_dump(mode="json", by_alias=True, exclude={"name"})
    legacy = fc.kind == "lstm" and fc.resolved_target == "window_ratio" and fc.seeds == 1 \
        and fc.heads == 2 and not any(split_features(fc.features)[1:])
    if legacy:
        return {k: settings[k] for k in ModelConfig.model_fields}
    settings["target"] = fc.resolved_target
    form = ensemble_format(fc.kind, fc.seeds)
    if form is not None:
        settings["ensemble"] = form
    return settings


def fold_keys(frames: Mapping[str, pd.DataFrame], plans: list[FoldPlan], fc: Any,
              wf: WalkForwardConfig) -> list[str]:
    """The model store key of each fold of ``plans`` for forecaster ``fc``."""
    if isinstance(fc, ModelConfig):
        fc = forecaster_from_model(fc)
    settings = key_settings(fc)
    raw, derived, _ = split_features(fc.features)
    columns = list(dict.fromkeys((*raw, "close", *(["volume"] if any(
        name == "volume_z" for name, _ in derived) else []))))  # what the model reads
    keys: list[str] = []
    for plan in plans:
        warm = wf.warm_start and plan.index > 0 and warm_starts(fc.kind)
        shape = {"index": plan.index, "warm_start": warm,
                 "epochs": fold_epochs(fc, plan, wf) if warm_starts(fc.kind) else None}
        data = rows_digest(frames, columns, plan.train_start, plan.train_end)
        keys.append(fold_key(settings, shape, data, keys[-1] if warm else None, runtime()))
    return keys


def fold_epochs(fc: Any, plan: FoldPlan, wf: WalkForwardConfig) -> int:
    """Epochs a fold of ``fc`` trains (1 for kinds fit in one go)."""
    if not warm_starts(fc.kind):
        return 1
    return wf.finetune_epochs if wf.warm_start and plan.index > 0 else fc.epochs


def next_bar_time(index: pd.DatetimeIndex, bar: int) -> pd.Timestamp:
    """The time of the bar after ``bar``: the bar a forecast made there is for. After the
    last bar it is one bar length later (the forecast past the data)."""
    if bar + 1 < len(index):
        return index[bar + 1]
    return index[-1] + (index[1] - index[0] if len(index) > 1 else pd.Timedelta(0))


def forecast_tables(index: pd.DatetimeIndex, symbols: list[str], windows: Windows,
                    predicted: np.ndarray, scale: np.ndarray, fold_of: np.ndarray,
                    target: str) -> dict[str, pd.DataFrame]:
    """One table per symbol, indexed by decision bar, for bars that have a forecast."""
    rows = windows.select(fold_of[windows.end] >= 0)
    close, ret = to_prices(rows, predicted[rows.end], target, scale[rows.end])
    targets = [next_bar_time(index, int(t)) for t in rows.end]
    decided = index[rows.end]
    return {symbol: pd.DataFrame({
        "pred_close": close[:, j], "pred_return": ret[:, j], "pred_target": predicted[rows.end, j],
        "base_close": rows.base[:, j], "target": targets, "fold": fold_of[rows.end]},
        index=decided)
        for j, symbol in enumerate(symbols)}
