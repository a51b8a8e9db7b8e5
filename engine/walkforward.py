"""Walk-forward training: fit, forecast up to the next re-fit, re-fit, and so on.

Bars are numbered 0 .. N-1. Fold k is fit at the close of bar ``e_k - 1`` on windows
whose targets are all <= bar ``e_k - 1`` (``e_0 = train_bars``, or the bars up to
``train_until``; ``e_k+1 = e_k + retrain_every``). It then forecasts from the windows
ending at bars ``e_k - 1`` .. ``e_k+1 - 2``: each forecast made at bar t is for the close
of bar t + 1 and uses bars <= t only. The last fold also forecasts from the last bar, for
the first bar after the data (what a live trader would act on).

Rolling windows train on the last ``e_0`` bars only; expanding windows on all bars so far.
With ``warm_start``, fold k > 0 continues from fold k-1's weights for ``finetune_epochs``.

With a ``ModelStore``, a fold whose key (settings, seed, known bars, previous fold) is
stored is not trained: its forecasts for the same input windows are read from the store,
or else recomputed from its weights in one batched call, exactly as the run that trained
it made them. A run that needs neither never imports Keras.

Example:
    >>> result = run_walkforward(market.frames, cfg.model, cfg.walkforward, out / "models")
    >>> result.forecasts["BTC/USDT"].tail()
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from engine.config import ModelConfig, WalkForwardConfig
from engine.errors import ModelError
from engine.models_store import ModelStore, fold_key, rows_digest, windows_digest
from models.features import Windows, close_matrix, feature_matrix, make_windows, to_prices

log = logging.getLogger(__name__)


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
    seconds: float  # training, or loading and forecasting when reused
    model_file: str | None  # relative to the run's output directory
    reused: bool = False  # loaded from the model store instead of trained
    store_key: str | None = None  # the fold's model store key (None without a store)


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
    forecasts_reused: int = 0  # stored folds whose forecasts came from the store as well

    @property
    def folds_reused(self) -> int:
        """Folds loaded from the model store."""
        return sum(f.reused for f in self.folds)

    @property
    def folds_trained(self) -> int:
        """Folds trained in this run."""
        return len(self.folds) - self.folds_reused


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
                    progress: bool = True, store: ModelStore | None = None) -> WalkForwardResult:
    """Fit (or load) and forecast fold by fold over aligned ``frames`` (every symbol).

    Args:
        frames: Aligned OHLCV frames; every symbol's features feed the model.
        model_cfg: The forecaster's settings.
        wf: The re-fit schedule.
        model_dir: Where each fold's ``.keras`` model and JSON go; None saves nothing.
        progress: Show a progress bar over folds.
        store: Fitted folds to reuse, and where newly fitted ones go; None trains all.
    """
    index = next(iter(frames.values())).index
    plans = plan_folds(len(index), first_train_end(index, wf, model_cfg.window_len), wf)
    keys = fold_keys(frames, plans, model_cfg, wf) if store is not None else [None] * len(plans)
    try:
        result = _walk(frames, plans, keys, model_cfg, wf, model_dir, progress, store)
    except _BrokenChain as exc:
        log.warning("%s; training every fold again", exc)
        store = ModelStore(store.root, retrain=True)
        result = _walk(frames, plans, keys, model_cfg, wf, model_dir, progress, store)
    if store is not None:
        log.info("walk-forward: %d folds trained, %d reused from the model store %s",
                 result.folds_trained, result.folds_reused, store.root)
    return result


class _BrokenChain(Exception):
    """A stored fold that a warm start must continue from cannot be loaded."""


def _walk(frames: Mapping[str, pd.DataFrame], plans: list[FoldPlan], keys: list[str | None],
          model_cfg: ModelConfig, wf: WalkForwardConfig, model_dir: Path | None,
          progress: bool, store: ModelStore | None) -> WalkForwardResult:
    index = next(iter(frames.values())).index
    windows = build_windows(frames, model_cfg)
    predicted = np.full((len(index), len(frames)), np.nan)
    fold_of = np.full(len(index), -1)
    records: list[FoldRecord] = []
    model, stored = None, None  # last trained model, last reused key
    predictor: list[Any] = []  # one model for every stored fold's weights, built when needed
    cached = 0  # stored folds whose forecasts were stored too
    started = time.perf_counter()
    bar = tqdm(plans, desc="walk-forward", unit="fold", disable=not progress)
    for plan, key in zip(bar, keys, strict=True):
        ahead = windows.select((windows.end >= plan.forecast_start)
                               & (windows.end < plan.forecast_end))
        meta = store.lookup(key) if store is not None else None
        weights = store.read_weights(key) if meta is not None else None
        digest = windows_digest(ahead.X) if store is not None else None
        if weights is not None:
            # 1. A stored fold: its forecasts for these very windows from the entry, else
            # its weights into one model and one batched call.
            t0 = time.perf_counter()
            outputs = store.read_forecasts(key, digest)
            if outputs is None:
                outputs = _stored_forecast(predictor, weights, model_cfg, windows, frames, ahead)
                store.put_forecasts(key, digest, outputs)
            else:
                cached += 1
            predicted[ahead.end] = outputs
            record = _reused_record(plan, index, ahead.end, meta, time.perf_counter() - t0,
                                    model_dir, key)
            _save_fold(store, key, None, record, model_cfg, wf, list(frames), model_dir)
            model, stored = None, key
        else:
            # 2. Fit the fold (from scratch, or warm from the previous fold's model); one
            # batched call forecasts every bar of the fold.
            previous = model if model is not None else _load_previous(store, stored, wf)
            model, record = fit_fold(plan, index, windows, previous, model_cfg, wf, model_dir,
                                     list(frames), store, key)
            predicted[ahead.end] = forecast(model, ahead)
            if store is not None and store.entry(key).is_dir():  # stored by fit_fold
                store.put_forecasts(key, digest, predicted[ahead.end])
            stored = None
        fold_of[ahead.end] = plan.index
        records.append(record)
        bar.set_postfix(loss=f"{record.final_loss:.3g}")
    bar.close()
    forecasts = _tables(index, list(frames), windows, predicted, fold_of)
    return WalkForwardResult(forecasts, records, time.perf_counter() - started,
                             plans[0].forecast_start, cached)


def fold_keys(frames: Mapping[str, pd.DataFrame], plans: list[FoldPlan],
              model_cfg: ModelConfig, wf: WalkForwardConfig) -> list[str]:
    """The model store key of each fold of ``plans`` (see ``engine.models_store``)."""
    from models.runtime import runtime as keras_runtime  # no Keras import: see its docstring

    runtime, settings = keras_runtime(), model_cfg.model_dump(mode="json")
    columns = list(dict.fromkeys((*model_cfg.features, "close")))  # what the model reads
    keys: list[str] = []
    for plan in plans:
        warm = wf.warm_start and plan.index > 0
        shape = {"index": plan.index, "warm_start": warm,
                 "epochs": wf.finetune_epochs if warm else model_cfg.epochs}
        data = rows_digest(frames, columns, plan.train_start, plan.train_end)
        keys.append(fold_key(settings, shape, data, keys[-1] if warm else None, runtime))
    return keys


def next_fold(frames: Mapping[str, pd.DataFrame], previous: Any, model_cfg: ModelConfig,
              wf: WalkForwardConfig, model_dir: Path, store: ModelStore) -> FoldRecord:
    """The last fold of the schedule over ``frames``, continued from ``previous`` (the
    fold before it): taken from ``store`` when it is there, else fitted and stored. Its
    model is saved in ``model_dir`` either way (what a paper trader re-fits with)."""
    index = next(iter(frames.values())).index
    plans = plan_folds(len(index), first_train_end(index, wf, model_cfg.window_len), wf)
    plan, key = plans[-1], fold_keys(frames, plans, model_cfg, wf)[-1]
    windows = build_windows(frames, model_cfg)
    meta = store.lookup(key)
    if meta is None:
        return fit_fold(plan, index, windows, previous, model_cfg, wf, model_dir,
                        list(frames), store, key)[1]
    ahead = windows.end[(windows.end >= plan.forecast_start) & (windows.end < plan.forecast_end)]
    record = _reused_record(plan, index, ahead, meta, 0.0, model_dir, key)
    _save_fold(store, key, None, record, model_cfg, wf, list(frames), model_dir)
    return record


def _stored_forecast(predictor: list[Any], weights: list[np.ndarray], model_cfg: ModelConfig,
                     windows: Windows, frames: Mapping[str, pd.DataFrame],
                     ahead: Windows) -> np.ndarray:
    """A stored fold's outputs for ``ahead``, from its weights in the one model kept in
    ``predictor`` (built on first use, so a run that needs none never loads Keras)."""
    if not predictor:
        predictor.append(_predictor(model_cfg, windows, len(frames)))
    _set_weights(predictor[0], weights)
    return forecast(predictor[0], ahead)


def _predictor(model_cfg: ModelConfig, windows: Windows, n_outputs: int) -> Any:
    """A model of the configured shape that forecasts with stored weights. Seeding first
    puts the backend in the same (deterministic) state as a run that trains."""
    from models import lstm

    lstm.seed_everything(model_cfg.seed)
    return lstm.build_model(model_cfg, windows.X.shape[2], n_outputs)


def _set_weights(model: Any, weights: list[np.ndarray]) -> None:
    from models import lstm

    lstm.set_weights(model, weights)


def _load_previous(store: ModelStore | None, key: str | None, wf: WalkForwardConfig) -> Any:
    """The full model (optimizer state included) of the stored fold a warm start continues
    from; None when there is none or the folds are not warm-started."""
    if store is None or key is None or not wf.warm_start:
        return None
    from models import lstm

    if not store.check(key):  # its bytes are not those stored: the entry is removed
        raise _BrokenChain(f"the stored fold model {store.model_path(key)} is damaged")
    try:
        return lstm.load(store.model_path(key))
    except Exception as exc:  # pruned or damaged meanwhile; Keras raises many kinds
        raise _BrokenChain(f"the stored fold model {store.model_path(key)} cannot be loaded "
                           f"({type(exc).__name__})") from exc


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
             symbols: list[str], store: ModelStore | None = None,
             key: str | None = None) -> tuple[Any, FoldRecord]:
    """Fit fold ``plan`` and save it; ``previous`` is the last fold's model (or None).

    Every fold is seeded on its own (``seed + fold``), so a fold's weights depend only on
    the previous fold's weights and the data: a paper trader that loads fold k from disk
    and fits fold k + 1 gets exactly the model of an uninterrupted walk-forward. With a
    ``store`` and the fold's ``key``, the fitted model is also put in the store.
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
    stored = False
    if store is not None and key is not None:
        record = replace(record, store_key=key)
        stored = _put(store, key, model, {**_fold_meta(record, model_cfg, wf, symbols),
                                          "runtime": lstm.runtime()})
    _save_fold(store if stored else None, key, model, record, model_cfg, wf, symbols, model_dir)
    return model, record


def _put(store: ModelStore, key: str, model: Any, meta: dict[str, Any]) -> bool:
    """Store a fitted fold; a store that cannot be written costs reuse, not the run (a
    read-only store says so itself, once)."""
    try:
        return store.put(key, model, meta) is not None
    except OSError as exc:
        log.warning("cannot write the model store %s (%s); this fold will be trained again "
                    "next time", store.root, exc.strerror or exc)
        return False


def _fold_meta(record: FoldRecord, model_cfg: ModelConfig, wf: WalkForwardConfig,
               symbols: list[str]) -> dict[str, Any]:
    """The settings saved beside every fold's model."""
    return {"fold": asdict(record), "model": model_cfg.model_dump(mode="json"),
            "walkforward": wf.model_dump(mode="json"), "symbols": symbols,
            "features": list(model_cfg.features)}


def _save_fold(store: ModelStore | None, key: str | None, model: Any, record: FoldRecord,
               model_cfg: ModelConfig, wf: WalkForwardConfig, symbols: list[str],
               model_dir: Path | None) -> None:
    """The fold's model and settings in the run's ``model_dir``: linked from the store when
    it holds the fold (no second copy of the weights), else saved."""
    if model_dir is None:
        return
    path = model_dir / Path(record.model_file).name
    meta = _fold_meta(record, model_cfg, wf, symbols)
    if store is None or key is None:
        from models import lstm  # only here: linking a stored fold needs no Keras

        lstm.save(model, path, meta)
        return
    store.link_model(key, path)
    tmp = path.with_name(f".{path.stem}.tmp.json")
    tmp.write_text(json.dumps(meta, indent=2, default=str))
    tmp.replace(path.with_suffix(".json"))


def _reused_record(plan: FoldPlan, index: pd.DatetimeIndex, ahead: np.ndarray,
                   meta: dict[str, Any], seconds: float, model_dir: Path | None,
                   key: str) -> FoldRecord:
    """The record of a fold taken from the store: its training facts as saved."""
    saved = meta["fold"]
    record = _record(plan, index, saved["train_windows"], ahead, saved["epochs"],
                     saved["warm_start"], saved["final_loss"], seconds, model_dir)
    return replace(record, reused=True, store_key=key)


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
