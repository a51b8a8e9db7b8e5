"""Walk-forward training: fit, forecast up to the next re-fit, re-fit, and so on.

Bars are numbered 0 .. N-1. Fold k is fit at the close of bar ``e_k - 1`` on windows
whose targets are all <= bar ``e_k - 1`` (``e_0 = train_bars``, or the bars up to
``train_until``; ``e_k+1 = e_k + retrain_every``). It then forecasts from the windows
ending at bars ``e_k - 1`` .. ``e_k+1 - 2``: each forecast made at bar t is for the close
of bar t + 1 and uses bars <= t only. The last fold also forecasts from the last bar, for
the first bar after the data (what a live trader would act on).

Rolling windows train on the last ``e_0`` bars only; expanding windows on all bars so far.
With ``warm_start``, fold k > 0 continues from fold k-1's weights for ``finetune_epochs``.

Example:
    >>> result = run_walkforward(market.frames, cfg.model, cfg.walkforward, out / "models")
    >>> result.forecasts["BTC/USDT"].tail()
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from engine.config import ModelConfig, WalkForwardConfig
from engine.errors import ModelError
from models.features import Windows, close_matrix, feature_matrix, make_windows, to_prices


@dataclass(frozen=True)
class FoldPlan:
    """Which bars one fold trains on and forecasts from (bar numbers, end exclusive)."""

    index: int
    train_start: int  # first bar of the training data
    train_end: int  # bars < train_end are known when this fold is fit
    forecast_start: int  # first bar whose window this fold forecasts from (= train_end - 1)
    forecast_end: int  # bars >= forecast_end belong to the next fold


@dataclass(frozen=True)
class FoldRecord:
    """What one fold did, for report.json."""

    fold: int
    train_start: str  # first training bar (ISO time)
    train_end: str  # last training bar
    forecast_start: str  # first bar forecast (a target bar)
    forecast_end: str  # last bar forecast
    train_windows: int
    forecasts: int
    epochs: int
    warm_start: bool
    final_loss: float
    seconds: float
    model_file: str | None  # relative to the run's output directory


@dataclass
class WalkForwardResult:
    """Forecasts per symbol (indexed by the bar they were made at) and per-fold records."""

    # Per symbol, indexed by the bar each forecast was made at: pred_close (next close),
    # pred_return (over this close), pred_target (model output), base_close (the window's
    # first close), target (time of the bar forecast), fold.
    forecasts: dict[str, pd.DataFrame]
    folds: list[FoldRecord]
    train_seconds: float
    first_forecast_bar: int  # bar index of the first forecast (decision bar)


def first_train_end(index: pd.DatetimeIndex, wf: WalkForwardConfig, window_len: int) -> int:
    """``e_0``: the number of bars known to the first fit.

    Raises:
        ModelError: The first fit has too few bars, or leaves none to forecast.
    """
    if wf.train_until is not None:
        cut = pd.Timestamp(wf.train_until, tz="UTC") + pd.Timedelta(days=1)
        end = int(index.searchsorted(cut))
        setting = f"walkforward.train_until = {wf.train_until}"
    else:
        end = int(wf.train_bars)
        setting = f"walkforward.train_bars = {wf.train_bars}"
    if end < window_len + 2:
        raise ModelError(f"{setting} gives {end} training bars; at least model.window_len + 2 "
                         f"= {window_len + 2} are needed")
    if end >= len(index):
        raise ModelError(f"{setting} leaves no bars to forecast: the data has {len(index)} bars "
                         f"({index[0]:%Y-%m-%d} .. {index[-1]:%Y-%m-%d}); train on fewer bars or "
                         "load more data")
    return end


def plan_folds(n_bars: int, first_end: int, wf: WalkForwardConfig) -> list[FoldPlan]:
    """The fold schedule over ``n_bars`` bars (see the module docstring)."""
    plans, end, k = [], first_end, 0
    while end - 1 < n_bars:
        start = max(0, end - first_end) if wf.window == "rolling" else 0
        nxt = end + wf.retrain_every
        plans.append(FoldPlan(k, start, end, end - 1, min(nxt - 1, n_bars)))
        end, k = nxt, k + 1
    return plans


def run_walkforward(frames: Mapping[str, pd.DataFrame], model_cfg: ModelConfig,
                    wf: WalkForwardConfig, model_dir: Path | None = None,
                    progress: bool = True) -> WalkForwardResult:
    """Fit and forecast fold by fold over aligned ``frames`` (every symbol is forecast).

    Args:
        frames: Aligned OHLCV frames; every symbol's features feed the model.
        model_cfg: The forecaster's settings.
        wf: The re-fit schedule.
        model_dir: Where each fold's ``.keras`` model and JSON go; None saves nothing.
        progress: Show a progress bar over folds.
    """
    index = next(iter(frames.values())).index
    windows = build_windows(frames, model_cfg)
    plans = plan_folds(len(index), first_train_end(index, wf, model_cfg.window_len), wf)

    predicted = np.full((len(index), len(frames)), np.nan)
    fold_of = np.full(len(index), -1)
    records: list[FoldRecord] = []
    model, started = None, time.perf_counter()
    bar = tqdm(plans, desc="walk-forward", unit="fold", disable=not progress)
    for plan in bar:
        # 1-2. Fit the fold (from scratch, or warm from the previous fold's model).
        model, record = fit_fold(plan, index, windows, model, model_cfg, wf, model_dir,
                                 list(frames))
        # 3. One batched call forecasts every bar of the fold.
        ahead = windows.select((windows.end >= plan.forecast_start)
                               & (windows.end < plan.forecast_end))
        predicted[ahead.end] = forecast(model, ahead)
        fold_of[ahead.end] = plan.index
        records.append(record)
        bar.set_postfix(loss=f"{record.final_loss:.3g}")
    bar.close()
    forecasts = _tables(index, list(frames), windows, predicted, fold_of)
    return WalkForwardResult(forecasts, records, time.perf_counter() - started,
                             plans[0].forecast_start)


def build_windows(frames: Mapping[str, pd.DataFrame], model_cfg: ModelConfig) -> Windows:
    """Every window of the aligned frames, with targets for every symbol."""
    values, _ = feature_matrix(frames, model_cfg.features)
    return make_windows(values, close_matrix(frames, list(frames)), model_cfg.window_len)


def forecast(model: Any, windows: Windows) -> np.ndarray:
    """Model outputs for ``windows`` in one batched call."""
    from models import lstm  # Keras loads here, not when the engine is imported

    return lstm.predict(model, windows.X)


def fit_fold(plan: FoldPlan, index: pd.DatetimeIndex, windows: Windows, previous: Any,
             model_cfg: ModelConfig, wf: WalkForwardConfig, model_dir: Path | None,
             symbols: list[str]) -> tuple[Any, FoldRecord]:
    """Fit fold ``plan`` and save it; ``previous`` is the last fold's model (or None).

    Every fold is seeded on its own (``seed + fold``), so a fold's weights depend only on
    the previous fold's weights and the data: a paper trader that loads fold k from disk
    and fits fold k + 1 gets exactly the model of an uninterrupted walk-forward.
    """
    from models import lstm

    t0 = time.perf_counter()
    # Training windows: complete windows inside the fold whose target bar is < train_end.
    train = windows.select((windows.end >= plan.train_start + model_cfg.window_len - 1)
                           & (windows.end <= plan.train_end - 2))
    warm = previous is not None and wf.warm_start
    lstm.seed_everything(model_cfg.seed + plan.index)
    model = previous if warm else lstm.build_model(model_cfg, windows.X.shape[2], len(symbols))
    lstm.seed_everything(model_cfg.seed + plan.index, model)
    epochs = wf.finetune_epochs if warm else model_cfg.epochs
    losses = lstm.fit(model, train.X, train.y, epochs, model_cfg.batch_size,
                      seed=model_cfg.seed + plan.index)
    ahead = windows.end[(windows.end >= plan.forecast_start) & (windows.end < plan.forecast_end)]
    record = _record(plan, index, len(train), ahead, epochs, warm, losses[-1],
                     time.perf_counter() - t0, model_dir)
    if model_dir is not None:
        lstm.save(model, model_dir / Path(record.model_file).name, {
            "fold": asdict(record), "model": model_cfg.model_dump(mode="json"),
            "walkforward": wf.model_dump(mode="json"), "symbols": symbols,
            "features": list(model_cfg.features)})
    return model, record


def _next_bar_time(index: pd.DatetimeIndex, bar: int) -> pd.Timestamp:
    """The time of the bar after ``bar``: the bar a forecast made there is for. After the
    last bar it is one bar length later (the forecast past the data)."""
    if bar + 1 < len(index):
        return index[bar + 1]
    return index[-1] + (index[1] - index[0] if len(index) > 1 else pd.Timedelta(0))


def _record(plan: FoldPlan, index: pd.DatetimeIndex, n_train: int, ahead: np.ndarray,
            epochs: int, warm: bool, loss: float, seconds: float,
            model_dir: Path | None) -> FoldRecord:
    model_file = f"{model_dir.name}/fold_{plan.index:03d}.keras" if model_dir else None
    return FoldRecord(
        fold=plan.index, train_start=index[plan.train_start].isoformat(),
        train_end=index[plan.train_end - 1].isoformat(),
        forecast_start=_next_bar_time(index, int(ahead[0])).isoformat(),
        forecast_end=_next_bar_time(index, int(ahead[-1])).isoformat(),
        train_windows=n_train, forecasts=len(ahead), epochs=epochs, warm_start=warm,
        final_loss=loss, seconds=round(seconds, 3), model_file=model_file)


def _tables(index: pd.DatetimeIndex, symbols: list[str], windows: Windows,
            predicted: np.ndarray, fold_of: np.ndarray) -> dict[str, pd.DataFrame]:
    """One table per symbol, indexed by decision bar, for bars that have a forecast."""
    rows = windows.select(fold_of[windows.end] >= 0)
    close, ret = to_prices(rows, predicted[rows.end])
    targets = [_next_bar_time(index, int(t)) for t in rows.end]
    decided = index[rows.end]
    return {symbol: pd.DataFrame({
        "pred_close": close[:, j], "pred_return": ret[:, j], "pred_target": predicted[rows.end, j],
        "base_close": rows.base[:, j], "target": targets, "fold": fold_of[rows.end]},
        index=decided)
        for j, symbol in enumerate(symbols)}
