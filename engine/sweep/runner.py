"""Run a sweep: split the data, run the trials on Ray Tune, choose, test on the holdout.

1. load the base config's data once and cut off the holdout (the last bars);
2. run every trial not already finished on Ray Tune, each on the selection period only
   (the data travel through Ray's object store, so no node reads the holdout);
3. choose the best finished trial by the objective;
4. run the chosen config once over all the data and score it on the holdout bars only;
5. PSR, DSR and PBO of the choice, then the sweep's files (``engine.sweep.outputs``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
from ray.tune import Callback

from engine.data import MarketData, load_market_data
from engine.errors import ConfigError, EngineError
from engine.report import write_json
from engine.sweep import trial as trials
from engine.sweep.cluster import CONNECT_TIMEOUT_S, check_address, check_resources
from engine.sweep.fast import uses_fast_path
from engine.sweep.spec import SweepSpec, trial_key

log = logging.getLogger(__name__)
SPEC_FILE = "sweep.json"


@dataclass
class Split:
    """The selection period's data and where the holdout starts."""

    selection: MarketData
    full: MarketData
    holdout_start: pd.Timestamp
    holdout_bars: int


def split_market(spec: SweepSpec, market: MarketData) -> Split:
    """Cut the holdout off the end of ``market``.

    Raises:
        ConfigError: The holdout leaves too little for selection, or is empty.
    """
    index = market.index
    rule = spec.raw.split
    if rule.holdout_bars is not None:
        if rule.holdout_bars >= len(index):
            raise ConfigError(f"{spec.label}: split.holdout_bars = {rule.holdout_bars} is not "
                              f"shorter than the data ({len(index)} bars, {index[0]:%Y-%m-%d} "
                              f"to {index[-1]:%Y-%m-%d}); use fewer holdout bars")
        start = index[len(index) - rule.holdout_bars]
    else:
        start = pd.Timestamp(rule.holdout_start, tz="UTC")
        if start <= index[0] or start > index[-1]:
            raise ConfigError(f"{spec.label}: split.holdout_start = {rule.holdout_start} is not "
                              f"inside the data ({index[0]:%Y-%m-%d} to {index[-1]:%Y-%m-%d})")
    cut = {s: f[f.index < start] for s, f in market.frames.items()}
    selection = replace(market, frames=cut)
    _check_selection_length(spec, selection, start)
    return Split(selection, market, start, int((index >= start).sum()))


def _check_selection_length(spec: SweepSpec, selection: MarketData, start: pd.Timestamp) -> None:
    from engine.folds import first_train_end

    wf = spec.base.walkforward
    window = max(f.window_len for f in spec.base.forecaster_configs)
    n = len(selection.index)
    try:
        first = first_train_end(selection.index, wf, window)
    except EngineError as exc:
        raise ConfigError(f"{spec.label}: the selection period (before {start:%Y-%m-%d}, {n} "
                          f"bars) is too short for the base config: {exc}") from None
    if first >= n - 1:
        raise ConfigError(f"{spec.label}: the selection period (before {start:%Y-%m-%d}) has "
                          f"{n} bars, but the first fit alone needs {first}; shorten the "
                          "holdout or walkforward.train_bars")


def prepare_dir(spec: SweepSpec) -> Path:
    """The sweep directory, created or checked to hold this same sweep (for resuming).

    Raises:
        ConfigError: The directory holds another sweep's trials or unrelated files.
    """
    out = spec.output_dir.expanduser().resolve()
    marker = out / SPEC_FILE
    fingerprint = spec.fingerprint()
    if marker.is_file():
        if json.loads(marker.read_text()).get("fingerprint") != fingerprint:
            raise ConfigError(f"output directory {spec.output_dir} holds a different sweep "
                              "(its base config, space, objective or split differ); choose "
                              "another --output or delete it to start over")
    elif out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"output directory {spec.output_dir} holds files but no sweep "
                          f"({SPEC_FILE}); choose a new or empty directory")
    out.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"fingerprint": fingerprint, "sweep_file": spec.label,
                        "created": dt.datetime.now(dt.timezone.utc).isoformat()})
    return out


def run_sweep(spec: SweepSpec, address: str | None = None, num_cpus: int | None = None,
              progress: bool = True,
              connect_timeout: float = CONNECT_TIMEOUT_S) -> dict[str, Any]:
    """Run the whole sweep and write its files into ``spec.output_dir``.

    Args:
        spec: The checked sweep.
        address: An existing Ray cluster to join (``ray://`` or ``host:port``); None
            starts a local Ray for this run.
        num_cpus: CPUs of the local Ray. Defaults to None (every core).
        progress: Print a line per finished trial.
        connect_timeout: Seconds to wait for ``address`` to answer. Defaults to 30.

    Returns:
        The summary (also written to summary.json).

    Raises:
        ConfigError: ``num_cpus`` below 1, a bad ``connect_timeout``, nothing answering at
            ``address``, or the sweep's own settings (see ``prepare_dir``).
    """
    from engine.sweep import outputs

    check_resources(num_cpus, connect_timeout)
    if address:
        check_address(address, connect_timeout)
    out = prepare_dir(spec)
    market = load_market_data(spec.base.data, progress=progress)
    split = split_market(spec, market)
    root = out / "trials"
    done = trials.finished(root)
    trials.clear_locks(out / "forecasts")
    started = time.perf_counter()
    complete = _run_on_ray(spec, split.selection, root, done, out, address, num_cpus,
                           progress)
    records = _collect(spec, trials.finished(root))
    if not complete:
        # Ray Tune ends its run quietly on SIGINT/SIGTERM: never choose from a partial sweep.
        print(f"stopped with {len(records)} of {spec.n_trials()} trials finished; run the same "
              "command again to run the rest", file=sys.stderr, flush=True)
        raise KeyboardInterrupt
    if not any(r["objective"] is not None for r in records):
        errors = {r["error"] for r in records if r["error"]}
        raise EngineError(f"{spec.label}: no trial finished with a score"
                          + (f"; first error: {sorted(errors)[0]}" if errors else ""))
    return outputs.finish(spec, out, split, records, root, time.perf_counter() - started,
                          progress)


def _collect(spec: SweepSpec, done: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The sweep's finished trials: in grid or sampling order, or (TPE) as they finished."""
    if spec.raw.search != "tpe":
        order = {trial_key(p): i for i, p in enumerate(spec.points())}
        return sorted((r for k, r in done.items() if k in order), key=lambda r: order[r["key"]])
    return sorted(done.values(), key=lambda r: (r["finished"], r["key"]))


# --- Ray Tune ---------------------------------------------------------------------------

def _run_on_ray(spec: SweepSpec, selection: MarketData, root: Path,
                done: dict[str, dict[str, Any]], out: Path, address: str | None,
                num_cpus: int | None, progress: bool) -> bool:
    """Run the trials not finished yet; False when the run was stopped before its end."""
    if spec.raw.search == "tpe":
        todo = spec.n_trials() - len(done)
        pending = None
    else:
        pending = _interleave(spec, [p for p in spec.points() if trial_key(p) not in done])
        todo = len(pending)
    total = spec.n_trials()
    if progress:
        print(f"{total} trials: {total - max(todo, 0)} already finished, {max(todo, 0)} to run",
              flush=True)
    if todo <= 0:
        return True
    fast = uses_fast_path(spec)
    if fast and pending is not None:
        return _run_in_process(spec, selection, root, pending, done, progress)
    import ray

    _start_ray(address, num_cpus)
    try:
        tuner = _tuner(spec, selection, root, done, pending, todo, out, progress, fast)
        results = tuner.fit()
        failed = [r.error for r in results if r.error is not None]
        if failed:
            raise RuntimeError(f"{len(failed)} trial(s) crashed: {failed[0]}")
        return results.num_terminated >= todo
    finally:
        ray.shutdown()


def _interleave(spec: SweepSpec, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points reordered so the trials that start together train different forecasters;
    the later ones of each group then reuse the forecasts the first one saved."""
    groups: dict[str, int] = {}
    ranked = []
    for i, p in enumerate(points):
        cfg = spec.trial_config(p)
        group = json.dumps(trials.forecast_identity(cfg), sort_keys=True)
        groups[group] = groups.get(group, -1) + 1
        ranked.append((groups[group], i, p))
    return [p for _, _, p in sorted(ranked, key=lambda t: t[:2])]


def _start_ray(address: str | None, num_cpus: int | None) -> None:
    import ray

    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the classic output obeys verbose=0
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        try:
            ray.init(address=address, **kwargs)
        except ConnectionError as exc:
            raise ConfigError(f"--address {address}: cannot join that Ray cluster ({exc}); "
                              "start it with `ray start --head` or drop --address") from None
    else:
        # "local": always a new Ray for this sweep, never another job's running instance
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **kwargs)


def _run_in_process(spec: SweepSpec, selection: MarketData, root: Path,
                    pending: list[dict[str, Any]], done: dict[str, dict[str, Any]],
                    progress: bool) -> bool:
    """Run a fast-path grid or random sweep in this process, one trial after another.

    On the kernel a trial takes milliseconds, less than Ray would spend scheduling it; the
    trials still leave their files one by one, so a stopped sweep resumes as usual.
    """
    from engine.sweep.fast import warm_up

    warm_up()
    report = _Progress(spec, len(pending), done) if progress else None
    every = max(1, len(pending) // 100)  # at most about 100 progress lines
    try:
        for i, params in enumerate(pending, 1):
            record = trials.run_trial(params, spec.trial_config(params), selection,
                                      spec.objective, root, fast=True)
            if report is not None and (i % every == 0 or i == len(pending)):
                report.count = i - 1
                value = record["objective"]
                report.on_trial_result(0, [], None, {
                    "objective": float("nan") if value is None else value,
                    "key": record["key"]})
    except KeyboardInterrupt:
        return False
    return True


def _tuner(spec: SweepSpec, selection: MarketData, root: Path,
           done: dict[str, dict[str, Any]], pending: list[dict[str, Any]] | None, todo: int,
           out: Path, progress: bool, fast: bool = False):
    from ray import tune

    trainable = tune.with_resources(
        tune.with_parameters(_trainable, spec=spec, market=selection, root=str(root),
                             fast=fast),
        {"cpu": 1})
    run_config = tune.RunConfig(
        name=f"tune-{int(time.time())}", storage_path=str(out / "tune"), verbose=0,
        callbacks=[_Progress(spec, todo, done)] if progress else [],
        failure_config=tune.FailureConfig(max_failures=0))
    objective = spec.objective
    if pending is not None:
        tune_config = tune.TuneConfig(num_samples=1,
                                      max_concurrent_trials=spec.raw.max_concurrent)
        return tune.Tuner(trainable, param_space={"params": tune.grid_search(pending)},
                          tune_config=tune_config, run_config=run_config)
    search = _optuna_search(spec, done)
    tune_config = tune.TuneConfig(num_samples=todo, search_alg=search, metric="objective",
                                  mode=objective.mode,
                                  max_concurrent_trials=spec.raw.max_concurrent)
    return tune.Tuner(trainable, tune_config=tune_config, run_config=run_config)


def _optuna_search(spec: SweepSpec, done: dict[str, dict[str, Any]]):
    """Optuna's TPE over the space; finished trials are told to it, not re-run."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    space, names = {}, {}
    for i, (key, values) in enumerate(spec.space.items()):
        name = f"p{i}"
        names[name] = key
        if isinstance(values, list):  # choices by index: Optuna wants plain scalars
            space[name] = optuna.distributions.CategoricalDistribution(list(range(len(values))))
        elif values.is_int:
            space[name] = optuna.distributions.IntDistribution(
                int(values.low), int(values.high), log=values.log, step=int(values.step or 1))
        else:
            space[name] = optuna.distributions.FloatDistribution(
                values.low, values.high, log=values.log, step=values.step)
    scored = [r for r in done.values() if r["objective"] is not None]
    points = [{f"p{i}": (spec.space[k].index(r["params"][k])
                         if isinstance(spec.space[k], list) else r["params"][k])
               for i, k in enumerate(spec.space)} for r in scored]
    sampler = optuna.samplers.TPESampler(seed=spec.raw.seed)
    return OptunaSearch(space=space, metric="objective", mode=spec.objective.mode,
                        sampler=sampler, points_to_evaluate=points or None,
                        evaluated_rewards=[r["objective"] for r in scored] or None)


def tune_params(spec: SweepSpec, config: dict[str, Any]) -> dict[str, Any]:
    """The dotted-key parameters of a Tune trial config (grid or TPE form)."""
    if "params" in config:
        return dict(config["params"])
    params = {}
    for i, (key, values) in enumerate(spec.space.items()):
        value = config[f"p{i}"]
        params[key] = values[int(value)] if isinstance(values, list) else value
    return params


def _trainable(config: dict[str, Any], spec: SweepSpec, market: MarketData, root: str,
               fast: bool = False) -> None:
    """One Tune trial: the walk-forward backtest, reported as ``objective``."""
    from ray import tune

    params = tune_params(spec, config)
    cfg = spec.trial_config(params)
    record = trials.run_trial(params, cfg, market, spec.objective, Path(root), fast=fast)
    value = record["objective"]
    tune.report({"objective": float("nan") if value is None else value, "key": record["key"]})


class _Progress(Callback):
    """One line per finished trial: its score and the best so far."""

    def __init__(self, spec: SweepSpec, todo: int, done: dict[str, dict[str, Any]]):
        self.spec, self.todo, self.count = spec, todo, 0
        scores = [r["objective"] for r in done.values() if r["objective"] is not None]
        self.best = (min if spec.objective.mode == "min" else max)(scores) if scores else None
        self.started = time.perf_counter()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.count += 1
        value = result.get("objective")
        better = min if self.spec.objective.mode == "min" else max
        if value is not None and value == value:  # NaN: a trial the engine refused
            self.best = value if self.best is None else better(self.best, value)
        elapsed = time.perf_counter() - self.started
        shown = "failed" if value is None or value != value else f"{value:.4g}"
        best = "-" if self.best is None else f"{self.best:.4g}"
        print(f"[{self.count}/{self.todo}] {result.get('key')} {self.spec.objective.metric} "
              f"{shown} (best {best}) {elapsed:.0f}s", flush=True)
