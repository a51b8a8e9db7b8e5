"""A sweep trial scores the same inside a Ray worker as in the sweep's own process."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.data import load_market_data
from engine.sweep import trial as trials
from engine.sweep.runner import split_market
from engine.sweep.spec import load_sweep
from tests.engine.sweep.conftest import sweep_dict, write_candles, write_sweep

pytestmark = pytest.mark.slow


def test_a_trial_in_a_ray_worker_gives_the_in_process_numbers(tmp_path):
    import ray

    sweep = sweep_dict(write_candles(tmp_path / "data"), tmp_path / "out", fast_path=False,
                       objective={"metric": "sharpe", "strategy": "lstm_signal"})
    spec = load_sweep(write_sweep(tmp_path / "sweep.yaml", sweep))
    selection = split_market(spec, load_market_data(spec.base.data, progress=False)).selection
    cfg = spec.trial_config(spec.points()[0])
    here = trials.score(cfg, selection, spec.objective)
    # A worker as the sweep starts it: one CPU, Ray's thread settings, a fresh process.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        worker = ray.remote(num_cpus=1)(trials.score)
        there = ray.get(worker.remote(cfg, selection, spec.objective))
    finally:
        ray.shutdown()
    (metrics, run, wf), (worker_metrics, worker_run, worker_wf) = here, there
    for symbol, table in wf.forecasts.items():
        pd.testing.assert_frame_equal(worker_wf.forecasts[symbol], table, check_exact=True)
    assert worker_metrics == metrics and metrics["n_trades"] > 0
    pd.testing.assert_series_equal(worker_run.equity, run.equity, check_exact=True)
