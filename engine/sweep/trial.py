"""One trial: one walk-forward backtest of one parameter set on the selection period.

Trials whose model, re-fit schedule and data match share one walk-forward: the first
saves its forecasts under ``forecasts/`` in the sweep directory, the others read them, so
a sweep over strategy parameters trains the forecaster once.

A finished trial leaves ``trials/<key>/returns.parquet`` and then ``result.json``, each
written to a temporary name and renamed, so ``result.json`` exists only for a trial that
finished. That file is what lets a killed sweep resume without re-running anything. A
trial whose files do not read (damaged on disk or by hand) counts as unfinished: its files
are moved aside and it runs again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow

from engine.config import Config
from engine.data import MarketData
from engine.errors import EngineError
from engine.report import forecast_metrics, trading_metrics, write_json
from engine.simulation import PORTFOLIO, StrategyRun
from engine.sweep.spec import Objective, trial_key
from engine.timeframes import periods_per_year
from strategies.registry import get_strategy, spec_label, user_params

log = logging.getLogger(__name__)
RESULT = "result.json"
RETURNS = "returns.parquet"
_LAST: dict[str, Any] = {}  # the walk-forward this process read last, by its file
_MEMO: dict[str, tuple[tuple, Any]] = {}  # see _remembered


@dataclass(frozen=True)
class TrialOutcome:
    """What a trial scored, and the per-bar returns of the objective's strategy."""

    key: str
    params: dict[str, Any]
    metrics: dict[str, Any]  # the objective strategy's trading metrics and the mse_ratio
    objective: float | None  # None when the trial failed
    error: str | None
    returns: pd.Series | None  # per-bar returns on the selection period


def objective_run(cfg: Config, runs: list[StrategyRun], objective: Objective) -> StrategyRun:
    """The run the objective scores: its strategy (by name) on its symbol.

    An ``mse_ratio`` objective may name a symbol that is only forecast, not traded; its
    returns are then the strategy's on the first traded symbol.
    """
    spec = next(s for s in cfg.strategies if s.name == objective.strategy)
    label = spec_label(spec)
    traded = cfg.traded_symbols
    symbol = objective.symbol if objective.symbol in traded else traded[0]
    if cfg.backtest.portfolio:  # one account trades every symbol
        symbol = PORTFOLIO
    return next(r for r in runs if r.label == label and r.symbol == symbol)


def forecast_identity(cfg: Config) -> list[Any]:
    """What decides a config's forecasts besides the data: the forecasters it fits (see
    ``engine.pipeline.forecasters_needed``), the longest window and the re-fit schedule."""
    from engine.pipeline import forecasters_needed

    needed = forecasters_needed(cfg)
    return [[f.model_dump(mode="json", by_alias=True) for f in cfg.forecaster_configs
             if f.name in needed], max(f.window_len for f in cfg.forecaster_configs),
            cfg.walkforward.model_dump(mode="json")]


def forecast_key(cfg: Config, market: MarketData) -> str:
    """What decides a walk-forward's forecasts: the forecasters, the schedule, the data."""
    text = json.dumps({"forecasts": forecast_identity(cfg),
                       "data": _remembered("data", (market,), lambda: _data_hash(market))},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def objective_forecasts(cfg: Config, wf: Any, objective: Objective) -> tuple[Any, str] | None:
    """(the objective symbol's forecast table, its target) that ``mse_ratio`` scores: the
    objective strategy's forecaster, else the first; None when no forecaster ran."""
    if not wf.by_name:
        return None
    spec = next(s for s in cfg.strategies if s.name == objective.strategy)
    cls = get_strategy(spec.name)
    name = cls.reads_forecaster({**user_params(cls), **spec.params}, cfg) or ""
    result = wf.by_name.get(cfg.forecaster(name).name) or next(iter(wf.by_name.values()))
    return result.forecasts[objective.symbol], result.target


def _data_hash(market: MarketData) -> str:
    data = hashlib.sha256()
    for symbol, frame in market.frames.items():
        data.update(symbol.encode())
        data.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return data.hexdigest()


def _remembered(name: str, inputs: tuple, compute: Any) -> Any:
    """``compute()``, reused while ``inputs`` are the very same objects as last time (a
    sweep's trials in one process share the selection data and the read forecasts)."""
    hit = _MEMO.get(name)
    if hit is not None and len(hit[0]) == len(inputs) and \
            all(a is b for a, b in zip(hit[0], inputs, strict=True)):
        return hit[1]
    value = compute()
    _MEMO[name] = (inputs, value)  # holding the inputs keeps their ids from being reused
    return value


def walk_forward(cfg: Config, market: MarketData, cache: Path | None) -> tuple[Any, bool]:
    """The walk-forward forecasts for ``cfg``, reused from ``cache`` when another trial
    had the same model, schedule and data (strategy-only changes train nothing).

    The trial that trains holds ``<key>.lock`` meanwhile; trials wanting the same
    forecasts wait for its ``<key>.pkl`` instead of training the same model again. A lock
    left by a killed sweep is removed when the sweep starts again (``clear_locks``).

    Returns:
        ``(WalkForwardResult, reused)``.
    """
    from engine.pipeline import walk_forward as fit_forecasters

    if cache is None:
        return fit_forecasters(cfg, market.frames), False
    cache.mkdir(parents=True, exist_ok=True)
    key = forecast_key(cfg, market)
    path, lock = cache / f"{key}.pkl", cache / f"{key}.lock"
    if _LAST.get("path") == path and path.is_file():
        return _LAST["wf"], True  # the process's previous trial read these very forecasts
    while True:
        saved = _read_pickle(path)
        if saved is not None:
            _LAST.update(path=path, wf=saved)
            return saved, True
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            break
        except FileExistsError:
            time.sleep(1.0)  # another trial is training this very model
    try:
        wf = fit_forecasters(cfg, market.frames)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(wf))
        tmp.replace(path)
    finally:
        lock.unlink(missing_ok=True)
    return wf, False


def _read_pickle(path: Path) -> Any:
    try:
        return pickle.loads(path.read_bytes())  # written by this sweep's trials only
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001  (a damaged pickle raises many kinds)
        log.warning("sweep forecasts %s do not read (%s); training them again", path,
                    type(exc).__name__)
        path.unlink(missing_ok=True)
        return None


def clear_locks(cache: Path) -> None:
    """Remove the training locks a killed sweep left behind (no trial runs yet)."""
    for lock in cache.glob("*.lock"):
        lock.unlink(missing_ok=True)


def score(cfg: Config, market: MarketData, objective: Objective,
          cache: Path | None = None,
          fast: bool = False) -> tuple[dict[str, Any], StrategyRun, Any]:
    """Walk forward and backtest ``cfg`` on ``market``; the objective's metrics and run.

    Args:
        cfg: The trial's config.
        market: The data to run on.
        objective: The metric scored.
        cache: A folder of walk-forward results shared by the sweep's trials. Defaults to
            None (always train).
        fast: Trade the objective strategy on the numba kernel (``engine.sweep.fast``)
            instead of backtrader; the run then has no fills or trade records. Defaults
            to False.

    Returns:
        ``(metrics, the objective's run, the walk-forward result)``; ``metrics`` has
        ``forecasts_reused`` too.
    """
    from engine.pipeline import run_strategies

    wf, reused = walk_forward(cfg, market, cache)
    if fast:
        from engine.sweep import fast as fast_path

        run, trades = fast_path.objective_run(cfg, market, wf, objective,
                                              forecast_key(cfg, market))
        metrics = trading_metrics(run, periods_per_year(cfg.data.timeframe), trades=trades)
    else:
        run = objective_run(cfg, run_strategies(cfg, market, wf), objective)
        metrics = trading_metrics(run, periods_per_year(cfg.data.timeframe))
    scored = objective_forecasts(cfg, wf, objective)  # every data symbol is forecast
    metrics["mse_ratio"] = None
    if scored is not None:
        (table, target), frame = scored, market.frames[objective.symbol]
        metrics["mse_ratio"] = _remembered(
            "mse_ratio", (table, frame),
            lambda: forecast_metrics(table, frame["close"], target)["mse_ratio"])
    metrics["forecasts_reused"] = reused
    return metrics, run, wf


def run_trial(params: dict[str, Any], cfg: Config, market: MarketData, objective: Objective,
              root: Path, fast: bool = False) -> dict[str, Any]:
    """Run one trial (or read its saved result) and return its result record.

    Args:
        params: The trial's dotted-key parameters.
        cfg: The trial's full config (base with ``params`` applied).
        market: The selection period's data; the holdout is not in it.
        objective: The metric scored.
        root: The sweep's ``trials`` directory.
        fast: Run on the kernel (see ``score``). Defaults to False.

    Returns:
        ``{key, params, metrics, objective, error, node, seconds, finished}``.
    """
    key = trial_key(params)
    folder = root / key
    saved = read_result(folder)
    if saved is not None:
        return saved
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        metrics, run, _ = score(cfg, market, objective, cache=root.parent / "forecasts",
                                 fast=fast)
        returns = run.equity.pct_change().iloc[1:].rename(key)
        value = metrics.get(objective.metric)
        error = None
    except EngineError as exc:  # a parameter set the engine refuses (too few bars, ...)
        metrics, returns, value, error = {}, None, None, " ".join(str(exc).split())
    if returns is not None:
        tmp = folder / f".{RETURNS}.tmp"
        returns.to_frame().to_parquet(tmp)
        tmp.replace(folder / RETURNS)
    record = {"key": key, "params": params, "metrics": metrics,
              "objective": None if value is None else float(value), "error": error,
              "node": _node(), "seconds": round(time.perf_counter() - started, 3),
              "finished": time.time()}
    write_json(folder / RESULT, record)  # last: its presence marks the trial as done
    return json.loads((folder / RESULT).read_text())


def read_result(folder: Path) -> dict[str, Any] | None:
    """A finished trial's record, or None when it has not finished.

    A trial whose files do not read (a result.json that is not its record, a returns file
    that is cut short) is treated as unfinished: logged, its files moved aside as
    ``<name>.damaged-<UTC time>`` and None returned, so it runs again.
    """
    try:
        return _checked_result(folder)
    except FileNotFoundError:
        return None
    except _Damaged as exc:
        _set_aside(folder, str(exc))
        return None


class _Damaged(Exception):
    """A trial's files are there but do not read."""


_FIELDS = {"key", "params", "metrics", "objective", "error"}


def _checked_result(folder: Path) -> dict[str, Any]:
    """The trial's record once it and its returns read. Raises ``_Damaged``, or
    FileNotFoundError while the trial has not finished."""
    data = (folder / RESULT).read_bytes()
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Damaged(f"{RESULT} is not JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(record, dict) or not _FIELDS <= record.keys() or \
            record["key"] != folder.name:
        raise _Damaged(f"{RESULT} is not the record of trial {folder.name}")
    if record["objective"] is not None:  # a scored trial wrote its returns first
        try:
            returns = read_returns(folder)
        except (OSError, ValueError, pyarrow.ArrowException) as exc:
            raise _Damaged(f"{RETURNS} does not read ({str(exc).splitlines()[0]})") from None
        if returns is None:
            raise _Damaged(f"{RETURNS} is missing")
    return record


def _set_aside(folder: Path, problem: str) -> None:
    """Move a damaged trial's files aside (kept for a look, never read again)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for name in (RESULT, RETURNS):
        path = folder / name
        if path.exists():
            path.replace(folder / f"{name}.damaged-{stamp}")
    log.warning("trial %s did not finish cleanly: %s; its files are kept as *.damaged-%s "
                "and it runs again", folder.name, problem, stamp)


def read_returns(folder: Path) -> pd.Series | None:
    """A finished trial's per-bar returns, or None."""
    path = folder / RETURNS
    return pd.read_parquet(path).iloc[:, 0] if path.is_file() else None


def finished(root: Path) -> dict[str, dict[str, Any]]:
    """Every finished trial under ``root``, by key."""
    if not root.is_dir():
        return {}
    records = (read_result(d) for d in sorted(root.iterdir()) if d.is_dir())
    return {r["key"]: r for r in records if r is not None}


def _node() -> str:
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001  (outside Ray there is no node id; the host will do)
        pass
    return f"{socket.gethostname()}:{os.getpid()}"
