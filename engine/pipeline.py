"""One backtest, from the config to its output directory: the research loop.

1. load and align the market data (exchange + cache, or CSV files);
2. walk-forward: fit the LSTM forecaster fold by fold (or load the folds an earlier run
   fitted from the model store) and forecast each fold's bars;
3. run every configured strategy on every account (one traded symbol, or all of them in
   portfolio mode) over the same bars and costs, through the execution core;
4. build report.json and write it with predictions.csv, trades.csv, fills.csv, the
   comparison tables, charts and report.html.

The output directory is assembled next to its final place and swapped in at the end, so
a failed or interrupted run leaves the previous results untouched. The command line
(``python -m engine.backtest``) is in ``engine.backtest``.
"""

from __future__ import annotations

import platform
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine import __version__, outputs
from engine.config import Config
from engine.data import MarketData, load_market_data
from engine.errors import ConfigError
from engine.execution import PORTFOLIO, StrategyRun
from engine.models_store import ModelStore
from engine.report import (
    benchmarks,
    forecast_diagnostics,
    forecast_metrics,
    trading_metrics,
    write_json,
)
from engine.report.forecasters import comparison, forecaster_sections, spa
from engine.simulation import simulate
from engine.timeframes import periods_per_year
from engine.walkforward import WalkForwardResult, run_walkforward
from models.kinds import warm_starts
from models.runtime import keras_backend, package_version
from strategies.registry import (
    check_config,
    get_strategy,
    name_forecasters,
    resolve_params,
    spec_label,
    user_params,
)
from strategies.rl_ppo import RLPPO


@dataclass
class RunResult:
    """What one backtest produced (also written to ``output_dir``)."""

    config: Config
    market: MarketData
    walkforward: WalkForwardResult
    runs: list[StrategyRun]
    report: dict[str, Any]
    output_dir: Path


@dataclass(frozen=True)
class RunContext:
    """What a strategy's ``prepare`` may read: the run's data, forecasts and model folder."""

    config: Config
    market: MarketData
    walkforward: WalkForwardResult
    symbols: tuple[str, ...]  # the account's traded symbols
    label: str  # the strategy's display name
    model_dir: Path | None  # where per-fold models are saved (None: nothing is saved)
    progress: bool


def forecasters_needed(cfg: Config) -> list[str]:
    """The forecasters a run fits, in config order: those a strategy (or the RL agent)
    reads, and every entry of a ``forecasters:`` section (listed to be judged). A
    ``model:`` forecaster nothing reads is not fit."""
    read = set()
    for spec in cfg.strategies:
        cls = get_strategy(spec.name)
        name = cls.reads_forecaster({**user_params(cls), **spec.params}, cfg)
        if name is not None:
            read.add(cfg.forecaster(name).name)
    listed = set(cfg.forecaster_names) if cfg.forecasters is not None else set()
    return [n for n in cfg.forecaster_names if n in read | listed]


def walk_forward(cfg: Config, frames: dict, model_dir: Path | None = None,
                 progress: bool = False, store: ModelStore | None = None) -> WalkForwardResult:
    """The walk-forward of the forecasters ``cfg`` needs (``forecasters_needed``)."""
    needed = forecasters_needed(cfg)
    if cfg.forecasters is None:
        entries = cfg.model if needed else []
    else:
        entries = [f for f in cfg.forecasters if f.name in needed]
    window = max(f.window_len for f in cfg.forecaster_configs)
    return run_walkforward(frames, entries, cfg.walkforward, model_dir, progress=progress,
                           store=store, plan_window=window)


def run_strategies(cfg: Config, market: MarketData, wf: WalkForwardResult,
                   model_dir: Path | None = None, progress: bool = False) -> list[StrategyRun]:
    """Every configured strategy on every account, from the first forecast bar on.

    An account trades one symbol, or every traded symbol in portfolio mode. Each strategy
    may prepare its parameters from the run first (``prepare``: a replay reads and checks
    its file), and an ``rl_ppo`` agent is trained walk-forward on the run's data here
    (``engine.rl.agent``), before its decisions are traded.
    """
    trade_start = market.index[wf.first_forecast_bar]
    runs = []
    for symbols in cfg.symbol_groups:
        for spec in cfg.strategies:
            cls, label = get_strategy(spec.name), spec_label(spec)
            params = cls.prepare(resolve_params(spec.name, spec.params), RunContext(
                cfg, market, wf, tuple(symbols), label, model_dir, progress))
            full = {**user_params(cls), **params}
            if issubclass(cls, RLPPO):
                params["decisions"] = _ppo_targets(cfg, full, market, wf, tuple(symbols),
                                                   label, model_dir, progress,
                                                   cls.reads_forecaster(full, cfg))
            tables = strategy_forecasts(cls, params, cfg, wf)
            runs.append(simulate(
                {s: market.frames[s] for s in symbols}, cls, params, cfg.broker, label=label,
                trade_start=trade_start, forecasts={s: tables.get(s) for s in symbols},
                timeframe=cfg.data.timeframe))
    return runs


def strategy_forecasts(cls: Any, params: dict, cfg: Config, wf: WalkForwardResult,
                       member: int | None = None) -> dict:
    """The forecast tables a strategy reads (of one member when ``member`` is given)."""
    name = cls.reads_forecaster({**user_params(cls), **params}, cfg)
    if name is None:
        return {}
    result = wf.by_name[cfg.forecaster(name).name]
    return result.forecasts if member is None else result.members[member]


def seed_spreads(cfg: Config, market: MarketData,
                 wf: WalkForwardResult) -> dict[tuple[str, str], dict[str, Any]]:
    """For each run trading on a forecaster with several seeds: its total return and
    Sharpe ratio when it trades on each seed's forecast instead of their mean (min,
    median, max), keyed by (label, symbol)."""
    bars_per_year = periods_per_year(cfg.data.timeframe)
    trade_start = market.index[wf.first_forecast_bar]
    spreads = {}
    for symbols in cfg.symbol_groups:
        for spec in cfg.strategies:
            cls = get_strategy(spec.name)
            params = resolve_params(spec.name, spec.params)
            name = cls.reads_forecaster({**user_params(cls), **params}, cfg)
            if name is None or not cls.needs_forecast or \
                    not wf.by_name[cfg.forecaster(name).name].members:
                continue
            result = wf.by_name[cfg.forecaster(name).name]
            figures = []
            for member in range(len(result.members)):
                tables = strategy_forecasts(cls, params, cfg, wf, member)
                run_ = simulate({s: market.frames[s] for s in symbols}, cls, params,
                                cfg.broker, trade_start=trade_start,
                                forecasts={s: tables[s] for s in symbols},
                                timeframe=cfg.data.timeframe)
                metrics = trading_metrics(run_, bars_per_year)
                figures.append((metrics["total_return"], metrics["sharpe"]))
            account = symbols[0] if len(symbols) == 1 else PORTFOLIO
            spreads[(spec_label(spec), account)] = _spread(figures)
    return spreads


def _spread(figures: list[tuple[float, float | None]]) -> dict[str, Any]:
    out: dict[str, Any] = {"seeds": len(figures)}
    for i, metric in enumerate(("total_return", "sharpe")):
        values = [f[i] for f in figures if f[i] is not None]
        out[metric] = {"min": min(values), "median": float(np.median(values)),
                       "max": max(values)} if values else None
    return out


def _ppo_targets(cfg: Config, params: dict[str, Any], market: MarketData,
                 wf: WalkForwardResult, symbols: tuple[str, ...], label: str,
                 model_dir: Path | None, progress: bool, observed: str | None) -> Any:
    """The targets an rl_ppo agent trained walk-forward decides (``engine.rl.agent``);
    ``observed`` names the forecaster it observes (None: none)."""
    from engine.rl.agent import ppo_targets  # defers gymnasium, torch, stable-baselines3

    return ppo_targets(cfg, params, market.frames, wf, symbols, model_dir, label, progress,
                       observed)


def build_report(cfg: Config, market: MarketData, wf: WalkForwardResult,
                 runs: list[StrategyRun], seconds: dict[str, float],
                 spreads: dict[tuple[str, str], dict[str, Any]] | None = None) -> dict[str, Any]:
    """The content of report.json (every field is described in README.md)."""
    bars_per_year = periods_per_year(cfg.data.timeframe)
    index = market.index
    test_start = index[wf.first_forecast_bar]
    closes = {s: frame["close"] for s, frame in market.frames.items()}
    bench = benchmarks(runs, closes)
    first = next(iter(wf.by_name.values()), None)
    compared = comparison(wf, closes)
    return {
        "forecast": {s: forecast_metrics(t, closes[s], first.target)
                     for s, t in wf.forecasts.items()},
        "diagnostics": {s: forecast_diagnostics(t, closes[s], first.target)
                        for s, t in wf.forecasts.items()},
        "forecasters": forecaster_sections(wf, closes),
        "forecast_comparison": compared,
        "model_confidence_set": {s: c["model_confidence_set"]["included"]
                                 for s, c in compared.items() if c["model_confidence_set"]},
        "strategies": [_strategy_entry(cfg, r, bars_per_year, bench, spreads or {})
                       for r in runs],
        "spa": spa(runs),
        "folds": [asdict(f) for f in wf.folds],
        "run": {
            "config_file": str(cfg.source) if cfg.source else None,
            "config_hash": cfg.source_hash,
            "data": {"start": index[0].isoformat(), "end": index[-1].isoformat(),
                     "bars": len(index), "test_start": test_start.isoformat(),
                     "test_bars": int((index >= test_start).sum()),
                     "timeframe": cfg.data.timeframe, "symbols": list(market.frames),
                     "traded": list(cfg.traded_symbols),
                     "sources": {s: r.source for s, r in market.reports.items()},
                     "gaps": {s: r.gaps.summary() for s, r in market.reports.items()}},
            "seconds": seconds,
            "forecasters": list(wf.by_name),
            "folds_trained": wf.folds_trained,
            "folds_reused": wf.folds_reused,
            "device": _device(wf),
            "versions": _versions(),
        },
        "config": cfg.to_dict(),
    }


def _strategy_entry(cfg: Config, run: StrategyRun, bars_per_year: float,
                    bench: dict[str, Any], spreads: dict) -> dict[str, Any]:
    spec = next(s for s in cfg.strategies if spec_label(s) == run.label)
    cls = get_strategy(spec.name)
    name = cls.reads_forecaster({**user_params(cls), **spec.params}, cfg)
    entry = {"strategy": run.label, "name": run.label.split("(")[0], "symbol": run.symbol,
             "forecaster": None if name is None else cfg.forecaster(name).name,
             **trading_metrics(run, bars_per_year, bench.get(run.symbol)),
             "contributions": run.contributions}
    if (run.label, run.symbol) in spreads:
        entry["seed_spread"] = spreads[(run.label, run.symbol)]
    return entry


def run(cfg: Config, progress: bool = True, retrain: bool = False,
        **loader_kwargs) -> RunResult:
    """Load data, walk forward, backtest and write every output into ``cfg.output_dir``.

    Folds already in the model store are loaded rather than trained, unless ``retrain``.

    Raises:
        ConfigError: A strategy, its parameters or an extra it needs is wrong or missing
            (checked first, before any data is read).
    """
    cfg = name_forecasters(cfg)
    started = time.perf_counter()
    check_config(cfg)  # strategies, parameters and extras: before any data or training
    final_dir = check_output_dir(Path(cfg.output_dir))
    market = load_market_data(cfg.data, progress=progress, **loader_kwargs)
    loaded = time.perf_counter()
    work_dir = _staging_dir(final_dir)
    try:
        store = ModelStore.for_data(cfg.data, retrain=retrain)
        wf = walk_forward(cfg, market.frames, work_dir / "models", progress, store)
        trained = time.perf_counter()
        runs = run_strategies(cfg, market, wf, work_dir / "models", progress)
        spreads = seed_spreads(cfg, market, wf)
        done = time.perf_counter()
        seconds = {"data": round(loaded - started, 3), "training": round(wf.train_seconds, 3),
                   "backtest": round(done - trained, 3)}
        seconds["total"] = round(time.perf_counter() - started, 3)
        report = build_report(cfg, market, wf, runs, seconds, spreads)
        outputs.write_all(work_dir, cfg, market, wf, runs, report)
        write_json(work_dir / "report.json", report)
        _swap_into_place(work_dir, final_dir)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    return RunResult(cfg, market, wf, runs, report, final_dir)


def check_output_dir(path: Path) -> Path:
    """The absolute output directory, if a backtest may replace it as a whole.

    A directory that already holds files is replaced only when it holds an earlier run
    (its report.json), so a mistyped ``--output`` never deletes unrelated files. A swap
    interrupted by a crash (the old run parked beside it) is undone first.

    Raises:
        ConfigError: The path is a file, the root, or a directory of other files.
    """
    final = path.expanduser().resolve()
    if final.parent == final:
        raise ConfigError(f"output_dir = {path} is the file-system root; choose a directory "
                          "for this run")
    old = final.with_name(f".{final.name}.old")
    if not final.exists() and old.is_dir():
        old.rename(final)  # a previous run was killed between its two renames
    if final.exists() and not final.is_dir():
        raise ConfigError(f"output_dir = {path} is a file; choose a directory")
    if final.is_dir() and any(final.iterdir()) and not (final / "report.json").is_file():
        raise ConfigError(f"output_dir = {path} holds files but no earlier run (no report.json);"
                          " a backtest replaces its output directory as a whole, so choose a "
                          "new or empty directory")
    return final


def _staging_dir(final_dir: Path) -> Path:
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    work = final_dir.with_name(f".{final_dir.name}.partial")
    shutil.rmtree(work, ignore_errors=True)  # left by a run that was killed
    work.mkdir()
    return work


def _swap_into_place(work_dir: Path, final_dir: Path) -> None:
    """Replace ``final_dir`` by ``work_dir`` with two renames; the old run goes last."""
    old = final_dir.with_name(f".{final_dir.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final_dir.exists():
        final_dir.rename(old)
    work_dir.rename(final_dir)
    shutil.rmtree(old, ignore_errors=True)


NO_DEVICE = "none: all folds and forecasts reused from the model store"
NO_FORECASTER = "none: no forecaster was fit (no strategy reads a forecast)"


def _device(wf: WalkForwardResult) -> str:
    """The backend and device the models ran on; NO_DEVICE when no model ran at all (then
    Keras was never imported, and is not imported to say where it would have run)."""
    if not wf.by_name:
        return NO_FORECASTER
    if wf.folds_trained == 0 and wf.forecasts_reused == len(wf.folds):
        return NO_DEVICE
    if all(r.forecasts_reused == len(r.folds) for r in wf.by_name.values()
           if warm_starts(r.kind)):  # only scikit-learn, LightGBM or custom models ran
        return "CPU (no neural forecaster ran)"
    from models.lstm import device_description  # defers Keras and its backend

    return device_description()


def _versions() -> dict[str, str | None]:
    """Versions of the engine and what it runs on, from package metadata (no imports)."""
    backend = keras_backend()
    versions = {"engine": __version__, "python": platform.python_version(),
                "keras_backend": backend}
    for dist in ("keras", "tensorflow", "jax", "torch", "backtrader", "ccxt", "pandas", "numpy"):
        if dist not in ("tensorflow", "jax", "torch") or dist == backend:
            versions[dist] = package_version(dist)
    return versions
