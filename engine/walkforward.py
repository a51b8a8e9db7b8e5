"""Walk-forward training: fit each forecaster fold by fold, or reuse the folds stored.

Every forecaster of a run follows the same fold plan (``engine.folds``). For each fold it
fits a model of its kind on the fold's training windows (continuing from the previous
fold's model where the kind warm-starts and ``walkforward.warm_start`` is on), forecasts
the fold's bars in one batched call, and keeps the model. Scalers of derived features are
fit on the fold's training windows only, and every forecast made at bar t reads bars
<= t only. Every fold is seeded on its own (``seed + fold``, per member).

With a ``ModelStore``, a fold whose key (kind, every setting, seeds, the bars it may
know, the previous fold when warm-started, the runtime) is stored is not fit: its
forecasts for the same input windows come from the store, or else from its stored model
in one batched call. A run that needs neither never imports Keras.

Example:
    >>> result = run_walkforward(market.frames, cfg.forecaster_configs, cfg.walkforward)
    >>> result.tables("lstm")["BTC/USDT"].tail()
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from engine.config import ModelConfig, WalkForwardConfig, forecaster_from_model
from engine.errors import ModelError
from engine.fold_data import (
    FoldInputs,
    fold_epochs,
    fold_inputs,
    fold_keys,
    forecast_tables,
    key_settings,
    next_bar_time,
)
from engine.folds import FoldPlan, fold_plan
from engine.models_store import ModelStore
from models.features import build_windows, to_prices
from models.kinds import model_class, warm_starts
from models.runtime import runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoldRecord:
    """What one fold of one forecaster did, for report.json."""

    fold: int
    train_start: str  # first training bar (ISO time)
    train_end: str  # last training bar
    forecast_start: str  # first bar forecast (a target bar)
    forecast_end: str  # last bar forecast
    train_windows: int
    forecasts: int
    epochs: int | None  # None for kinds without epochs
    warm_start: bool
    final_loss: float | None
    seconds: float  # training, or loading and forecasting when reused
    model_file: str | None  # relative to the run's output directory
    reused: bool = False  # loaded from the model store instead of trained
    store_key: str | None = None  # the fold's model store key (None without a store)
    forecaster: str = "lstm"  # the forecaster's name


@dataclass
class ForecasterResult:
    """One forecaster's forecasts per symbol, indexed by the bar they were made at.

    Tables have the columns pred_close (next close), pred_return (over this close),
    pred_target (model output: the mean of the members), base_close (the window's first
    close), target (time of the bar forecast) and fold.
    """

    name: str
    kind: str
    target: str
    forecasts: dict[str, pd.DataFrame]
    members: list[dict[str, pd.DataFrame]]  # each seed's tables when seeds > 1, else []
    folds: list[FoldRecord]
    seconds: float
    forecasts_reused: int = 0  # stored folds whose forecasts came from the store as well


@dataclass
class WalkForwardResult:
    """Every forecaster's result; the first forecaster's tables are ``forecasts``."""

    by_name: dict[str, ForecasterResult]
    first_forecast_bar: int  # bar index of the first forecast (decision bar)
    train_seconds: float
    plans: list[FoldPlan] = field(default_factory=list)

    def tables(self, name: str | None = None) -> dict[str, pd.DataFrame]:
        """The forecast tables of forecaster ``name`` (None or "" = the first)."""
        if not name:
            return next(iter(self.by_name.values())).forecasts if self.by_name else {}
        return self.by_name[name].forecasts

    @property
    def forecasts(self) -> dict[str, pd.DataFrame]:
        """The first forecaster's tables (empty when no forecaster was run)."""
        return self.tables()

    @property
    def folds(self) -> list[FoldRecord]:
        """Every forecaster's fold records, forecaster by forecaster."""
        return [f for r in self.by_name.values() for f in r.folds]

    @property
    def folds_reused(self) -> int:
        """Folds loaded from the model store."""
        return sum(f.reused for f in self.folds)

    @property
    def folds_trained(self) -> int:
        """Folds trained in this run."""
        return len(self.folds) - self.folds_reused

    @property
    def forecasts_reused(self) -> int:
        """Stored folds whose forecasts were stored too."""
        return sum(r.forecasts_reused for r in self.by_name.values())


def as_forecasters(forecasters: ModelConfig | Sequence[Any]) -> tuple[list[Any], bool]:
    """(forecaster entries, legacy): a ``model:`` section is one lstm forecaster whose folds
    keep the layout runs have always had (``models/fold_NNN.keras``)."""
    if isinstance(forecasters, ModelConfig):
        return [forecaster_from_model(forecasters)], True
    return list(forecasters), False


def longest_window(forecasters: Sequence[Any]) -> int:
    """The longest ``window_len`` among ``forecasters`` (what the first fold needs)."""
    return max(f.window_len for f in forecasters)


def run_walkforward(frames: Mapping[str, pd.DataFrame], forecasters: ModelConfig | Sequence[Any],
                    wf: WalkForwardConfig, model_dir: Path | None = None,
                    progress: bool = True, store: ModelStore | None = None,
                    plan_window: int | None = None) -> WalkForwardResult:
    """Fit (or load) and forecast fold by fold over aligned ``frames`` (every symbol).

    Args:
        frames: Aligned OHLCV frames; every symbol's features feed every forecaster.
        forecasters: The forecaster entries to run (none is fine: the plan is still made),
            or a ``model:`` section (one lstm).
        wf: The re-fit schedule.
        model_dir: Where each fold's model and settings go; None saves nothing.
        progress: Show a progress bar over the training epochs.
        store: Fitted folds to reuse, and where newly fitted ones go; None trains all.
        plan_window: The window length the fold plan makes room for. Defaults to the
            longest of ``forecasters`` (a run plans for all its configured forecasters,
            trained or not, so that its test period never depends on which are run).
    """
    entries, legacy = as_forecasters(forecasters)
    index = next(iter(frames.values())).index
    plans = fold_plan(index, wf, plan_window or longest_window(entries))
    started = time.perf_counter()
    bar = _ProgressBar(entries, plans, wf, progress)
    results = {}
    for fc in entries:
        walk = _Walk(frames, fc, plans, wf, model_dir, legacy, store, bar)
        results[fc.name] = walk.run()
    bar.close()
    result = WalkForwardResult(results, plans[0].forecast_start, time.perf_counter() - started,
                               plans)
    if store is not None and entries:
        log.info("walk-forward: %d folds trained, %d reused from the model store %s",
                 result.folds_trained, result.folds_reused, store.root)
    return result


class _ProgressBar:
    """One bar over the epochs still to train (members count; a reused fold counts none),
    so the time left is estimated from epochs, not folds."""

    def __init__(self, entries: Sequence[Any], plans: Sequence[FoldPlan],
                 wf: WalkForwardConfig, enabled: bool):
        total = sum(fold_epochs(fc, plan, wf) * fc.seeds for fc in entries for plan in plans)
        self.bar = tqdm(total=total, desc="walk-forward", unit="epoch", disable=not enabled)

    def done(self, units: int, trained: bool, **postfix: Any) -> None:
        if trained:
            self.bar.update(units)
        else:  # nothing to wait for: take it out of the estimate
            self.bar.total = max(self.bar.total - units, self.bar.n)
            self.bar.refresh()
        self.bar.set_postfix(**postfix)

    def close(self) -> None:
        self.bar.close()


class _BrokenChain(Exception):
    """A stored fold that a warm start must continue from cannot be loaded."""


class _Walk:
    """One forecaster's walk over the fold plan."""

    def __init__(self, frames: Mapping[str, pd.DataFrame], fc: Any, plans: list[FoldPlan],
                 wf: WalkForwardConfig, model_dir: Path | None, legacy: bool,
                 store: ModelStore | None, bar: _ProgressBar,
                 keys: list[str | None] | None = None):
        self.frames, self.fc, self.plans, self.wf = frames, fc, plans, wf
        self.model_dir, self.legacy, self.store, self.bar = model_dir, legacy, store, bar
        self.index = next(iter(frames.values())).index
        self.symbols = list(frames)
        self.windows = build_windows(frames, fc)
        if keys is None:
            keys = fold_keys(frames, plans, fc, wf) if store is not None else \
                [None] * len(plans)
        self.keys = keys

    def run(self) -> ForecasterResult:
        try:
            return self._walk()
        except _BrokenChain as exc:
            log.warning("%s; training every fold of %s again", exc, self.fc.name)
            self.store = ModelStore(self.store.root, retrain=True)
            return self._walk()

    def _walk(self) -> ForecasterResult:
        n, width = len(self.index), len(self.symbols)
        members = np.full((self.fc.seeds, n, width), np.nan)
        scale = np.ones((n, width))
        fold_of = np.full(n, -1)
        records: list[FoldRecord] = []
        self.cached, self.model, self.stored = 0, None, None
        started = time.perf_counter()
        for plan, key in zip(self.plans, self.keys, strict=True):
            record, fold, outputs = self._fold(plan, key)
            members[:, fold.ahead.end] = outputs
            scale[fold.ahead.end] = fold.scale
            fold_of[fold.ahead.end] = plan.index
            records.append(record)
            self.bar.done(fold_epochs(self.fc, plan, self.wf) * self.fc.seeds,
                          trained=not record.reused, loss=_loss(record.final_loss))
        return self._result(members, scale, fold_of, records, time.perf_counter() - started,
                            self.cached)

    def fold(self, plan: FoldPlan, key: str | None, previous: Any) -> FoldRecord:
        """Fold ``plan`` alone, continuing from the model ``previous`` (paper trading)."""
        self.cached, self.model, self.stored = 0, previous, None
        return self._fold(plan, key)[0]

    def _fold(self, plan: FoldPlan, key: str | None) -> tuple[FoldRecord, FoldInputs,
                                                               np.ndarray]:
        """Reuse or fit one fold; returns its record, inputs and members' outputs.

        1. A stored fold: its forecasts for these very windows from the entry, else from
           its stored model in one batched call.
        2. Otherwise fit it (from scratch, or warm from the previous fold's model) and
           forecast every bar of the fold in one batched call.
        """
        fold = fold_inputs(self.windows, plan, self.fc, self.frames)
        meta = self.store.lookup(key) if self.store is not None else None
        t0 = time.perf_counter()
        if meta is not None:
            outputs, from_store = self._stored(key, fold)
            if outputs is not None:
                self.cached += from_store
                record = self._record(plan, fold, meta["fold"], time.perf_counter() - t0, key,
                                      reused=True)
                self._save(key, None, record)
                self.model, self.stored = None, key
                return record, fold, outputs
        previous = self.model if self.model is not None else self._previous(self.stored)
        model, loss = self._fit(plan, fold, previous)
        outputs = fold.outputs(model, fold.ahead)
        done = {"epochs": self._epochs(plan, previous), "warm_start": self._warm(previous),
                "final_loss": loss}
        record = self._record(plan, fold, done, time.perf_counter() - t0, key, reused=False)
        self._store(key, model, record, outputs, fold)
        self.model, self.stored = model, None
        return record, fold, outputs

    # --- one fold --------------------------------------------------------------------------

    def _warm(self, previous: Any) -> bool:
        return previous is not None and self.wf.warm_start and warm_starts(self.fc.kind)

    def _epochs(self, plan: FoldPlan, previous: Any) -> int | None:
        if not warm_starts(self.fc.kind):
            return None
        return self.wf.finetune_epochs if self._warm(previous) else self.fc.epochs

    def _fit(self, plan: FoldPlan, fold: FoldInputs, previous: Any) -> tuple[Any, float]:
        if len(fold.train) == 0:
            raise ModelError(f"forecaster {self.fc.name}: fold {plan.index} has no training "
                             "windows (the training period is shorter than its window_len + 1 "
                             "bars, or its derived features need more history); train on more "
                             "bars")
        cls = model_class(self.fc.kind)
        model = previous if self._warm(previous) else \
            cls.build(self.fc, fold.train.X.shape[2], len(self.symbols), plan.index)
        loss = model.fit(fold.train.X, fold.train_y, fold=plan.index,
                         epochs=self._epochs(plan, previous) or 0)
        if loss is not None and not np.isfinite(loss):
            raise ModelError(f"forecaster {self.fc.name}: training diverged (loss {loss}); "
                             "lower its learning_rate or check the data for extreme values")
        return model, loss

    def _stored(self, key: str, fold: FoldInputs) -> tuple[np.ndarray | None, bool]:
        """A stored fold's outputs for these windows: from the entry, else from its model
        (then kept in the entry). None when the entry turns out to be unusable."""
        outputs = self.store.read_forecasts(key, fold.digest)
        if outputs is not None:
            return outputs.reshape(self.fc.seeds, len(fold.ahead), -1), True
        model = self._load(key)
        if model is None:
            return None, False
        outputs = fold.outputs(model, fold.ahead)
        self.store.put_forecasts(key, fold.digest, _stored_shape(outputs))
        return outputs, False

    def _load(self, key: str) -> Any:
        if not self.store.check_model(key):
            return None
        try:
            return model_class(self.fc.kind).load(self.fc, self.store.entry(key))
        except Exception as exc:  # pruned or damaged meanwhile; libraries raise many kinds
            self.store.discard(key, f"its model cannot be loaded: {type(exc).__name__}")
            return None

    def _previous(self, key: str | None) -> Any:
        """The model of the stored fold a warm start continues from (optimizer state
        included); None when there is none or the kind does not warm-start."""
        if self.store is None or key is None or not self.wf.warm_start or \
                not warm_starts(self.fc.kind):
            return None
        if not self.store.check_model(key):
            raise _BrokenChain(f"the stored fold model {self.store.entry(key)} is damaged "
                               "or gone")
        try:
            return model_class(self.fc.kind).load(self.fc, self.store.entry(key))
        except Exception as exc:  # pruned or damaged meanwhile; Keras raises many kinds
            raise _BrokenChain(f"the stored fold model {self.store.entry(key)} cannot be "
                               f"loaded ({type(exc).__name__})") from exc

    def _store(self, key: str | None, model: Any, record: FoldRecord, outputs: np.ndarray,
               fold: FoldInputs) -> None:
        stored = False
        if self.store is not None and key is not None:
            stored = self.store.put(key, model.save, {**self._meta(record),
                                                     "runtime": runtime()}) is not None
            if stored:
                self.store.put_forecasts(key, fold.digest, _stored_shape(outputs))
        self._save(key if stored else None, model, record)

    def _save(self, key: str | None, model: Any, record: FoldRecord) -> None:
        """The fold's model and settings in the run's model directory: linked from the
        store when it holds the fold (no second copy), else saved."""
        if self.model_dir is None:
            return
        meta = self._meta(record)
        path = self.model_dir.parent / record.model_file
        if self.legacy:  # the layout of a model: section
            if key is not None:
                self.store.link(key, "model.keras", path)
            else:
                from models import lstm  # defers Keras: a run linking stored folds never imports it

                lstm.save(model.network, path, meta)
                return
            _write_json(path.with_suffix(".json"), meta)
            return
        path.mkdir(parents=True, exist_ok=True)
        if key is not None:
            for name in self.store.model_files(key):
                self.store.link(key, name, path / name)
        else:
            model.save(path)
        _write_json(path / "settings.json", meta)

    def _meta(self, record: FoldRecord) -> dict[str, Any]:
        """The settings saved beside every fold's model."""
        return {"fold": asdict(record), "forecaster": self.fc.model_dump(mode="json",
                                                                         by_alias=True),
                "model": key_settings(self.fc),
                "walkforward": self.wf.model_dump(mode="json"), "symbols": self.symbols,
                "features": list(self.fc.features)}

    def _record(self, plan: FoldPlan, fold: FoldInputs, saved: Mapping[str, Any],
                seconds: float, key: str | None, reused: bool) -> FoldRecord:
        model_file = None
        if self.model_dir is not None:  # relative to the run's output directory
            name = f"fold_{plan.index:03d}"
            model_file = f"{self.model_dir.name}/{name}.keras" if self.legacy else \
                f"{self.model_dir.name}/{self.fc.name}/{name}"
        ahead = fold.ahead.end
        return FoldRecord(
            fold=plan.index, train_start=self.index[plan.train_start].isoformat(),
            train_end=self.index[plan.train_end - 1].isoformat(),
            forecast_start=next_bar_time(self.index, int(ahead[0])).isoformat(),
            forecast_end=next_bar_time(self.index, int(ahead[-1])).isoformat(),
            train_windows=len(fold.train), forecasts=len(ahead), epochs=saved["epochs"],
            warm_start=saved["warm_start"], final_loss=saved["final_loss"],
            seconds=round(seconds, 3), model_file=model_file, reused=reused,
            store_key=key, forecaster=self.fc.name)

    # --- the result ------------------------------------------------------------------------

    def _result(self, members: np.ndarray, scale: np.ndarray, fold_of: np.ndarray,
                records: list[FoldRecord], seconds: float, cached: int) -> ForecasterResult:
        mean = members.mean(axis=0)
        tables = forecast_tables(self.index, self.symbols, self.windows, mean, scale, fold_of,
                                 self.fc.resolved_target)
        per_member = [forecast_tables(self.index, self.symbols, self.windows, m, scale,
                                      fold_of, self.fc.resolved_target)
                      for m in members] if self.fc.seeds > 1 else []
        return ForecasterResult(self.fc.name, self.fc.kind, self.fc.resolved_target, tables,
                                per_member, records, seconds, cached)


def _stored_shape(outputs: np.ndarray) -> np.ndarray:
    """What a store entry keeps: one member's (windows, outputs), else all members'."""
    return outputs[0] if len(outputs) == 1 else outputs


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _write_json(path: Path, meta: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.json")
    tmp.write_text(json.dumps(meta, indent=2, default=str))
    tmp.replace(path)


def next_fold(frames: Mapping[str, pd.DataFrame], previous: Any, fc: Any,
              wf: WalkForwardConfig, model_dir: Path, store: ModelStore,
              plan_window: int | None = None) -> FoldRecord:
    """The last fold of the schedule over ``frames``, continued from ``previous`` (the
    fold before it): taken from ``store`` when it is there, else fitted and stored. Its
    model is saved in ``model_dir`` either way (what a paper trader re-fits with).

    ``fc`` is a forecaster entry or a ``model:`` section; ``plan_window`` as in
    ``run_walkforward``."""
    entries, legacy = as_forecasters(fc if isinstance(fc, ModelConfig) else [fc])
    index = next(iter(frames.values())).index
    plans = fold_plan(index, wf, plan_window or entries[0].window_len)
    key = fold_keys(frames, plans, entries[0], wf)[-1]
    walk = _Walk(frames, entries[0], plans[-1:], wf, model_dir, legacy, store,
                 _ProgressBar([], [], wf, False), keys=[key])
    return walk.fold(plans[-1], key, previous)


def load_fold(fc: Any, path: Path) -> Any:
    """A fold model saved in a run's model directory (``FoldRecord.model_file``) of
    forecaster ``fc`` (an entry or a ``model:`` section)."""
    fc = as_forecasters(fc if isinstance(fc, ModelConfig) else [fc])[0][0]
    if path.suffix == ".keras":  # the layout of a model: section: one file, one member
        from models import lstm  # defers Keras (and its backend) to a fold being loaded
        from models.neural import NeuralModel  # Keras too

        return NeuralModel(fc, lstm.load(path))
    return model_class(fc.kind).load(fc, path)


def forecast_at(frames: Mapping[str, pd.DataFrame], fc: Any, wf: WalkForwardConfig,
                model: Any, t: int, plan_window: int | None = None) -> dict[str, tuple[float,
                                                                                      float]]:
    """{symbol: (predicted close, predicted return)} of the window ending at bar ``t``,
    from ``model`` (the fold that forecasts bar t), scaled as that fold was."""
    fc = as_forecasters(fc if isinstance(fc, ModelConfig) else [fc])[0][0]
    index = next(iter(frames.values())).index
    plan = fold_plan(index[:t + 1], wf, plan_window or fc.window_len)[-1]
    fold = fold_inputs(build_windows(frames, fc), plan, fc, frames)
    last = fold.ahead.select(fold.ahead.end == t)
    outputs = fold.outputs(model, last).mean(axis=0)
    close, ret = to_prices(last, outputs, fc.resolved_target, fold.scale)
    return {s: (float(close[0, j]), float(ret[0, j])) for j, s in enumerate(frames)}
