"""Sweeps on Ray: a local Ray with 2 CPUs, a two-node cluster, and the untouched holdout."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from engine.config import load_config
from engine.sweep.runner import run_sweep
from engine.sweep.spec import load_sweep
from tests.engine.sweep.conftest import BARS, HOLDOUT, sweep_dict, write_candles, write_sweep

pytestmark = pytest.mark.slow


def _sweep(folder, csv, **changes):
    path = write_sweep(folder / "sweep.yaml", sweep_dict(csv, folder / "out", **changes))
    spec = load_sweep(path)
    return spec, run_sweep(spec, num_cpus=2, progress=False), folder / "out"


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """The 2 x 2 sma_cross grid, every trial on backtrader through Ray."""
    folder = tmp_path_factory.mktemp("grid")
    return _sweep(folder, write_candles(folder / "data"), fast_path=False)


@pytest.fixture(scope="module")
def fast_grid(tmp_path_factory):
    """The same grid on the fast path (the kernel, in the sweep's process)."""
    folder = tmp_path_factory.mktemp("fast_grid")
    return _sweep(folder, write_candles(folder / "data"))


@pytest.fixture(scope="module")
def shocked(tmp_path_factory):
    """The same sweep over data whose holdout bars are different."""
    folder = tmp_path_factory.mktemp("shocked")
    return _sweep(folder, write_candles(folder / "data", holdout_shock=0.6))


def test_local_sweep_writes_every_output(grid):
    spec, summary, out = grid
    for name in ("trials.csv", "returns.parquet", "best.yaml", "holdout.json", "summary.json",
                 "report.html", "curves.png", "objective_by_parameter.png", "heatmap.png"):
        assert (out / name).is_file(), name
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 4 and trials["error"].isna().all()
    assert set(zip(trials["strategies.sma_cross.fast"], trials["strategies.sma_cross.slow"],
                   strict=True)) == {(2, 8), (2, 12), (4, 8), (4, 12)}
    assert (trials["objective"] == trials["sharpe"]).all()
    # Only strategy parameters change: one trial trains, the three others (the one that
    # started beside it too) reuse its forecasts.
    assert trials["forecasts_reused"].sum() == 3
    assert len(list((out / "forecasts").glob("*.pkl"))) == 1
    returns = pd.read_parquet(out / "returns.parquet")
    assert list(returns.columns) == sorted(returns.columns, key=list(trials["trial"]).index)
    assert set(returns.columns) == set(trials["trial"])
    saved = json.loads((out / "summary.json").read_text())
    assert saved["trials"] == 4 and saved["best_trial"] in returns.columns
    assert saved["best_objective"] == trials["objective"].max()
    best_row = trials.set_index("trial").loc[saved["best_trial"]]
    assert saved["best_params"] == {"strategies.sma_cross.fast": int(best_row.iloc[0]),
                                    "strategies.sma_cross.slow": int(best_row.iloc[1])}
    for key in ("psr", "dsr", "pbo"):
        assert 0.0 <= saved[key] <= 1.0
    assert saved["dsr"] <= saved["psr"]
    assert saved["statistics"]["n_trials"] == 4 and saved["statistics"]["kurtosis"] > 0
    assert saved["holdout"]["bars"] == HOLDOUT
    assert "PSR" in (out / "report.html").read_text()


def test_the_fast_path_sweep_chooses_and_scores_as_the_backtrader_sweep(grid, fast_grid):
    _, summary, out = grid
    _, fast_summary, fast_out = fast_grid
    slow = pd.read_csv(out / "trials.csv").set_index("trial").sort_index()
    fast = pd.read_csv(fast_out / "trials.csv").set_index("trial").sort_index()
    assert fast.index.equals(slow.index) and fast["error"].isna().all()
    assert fast["node"].nunique() == 1  # one process ran them all
    columns = ["objective", "total_return", "sharpe", "max_drawdown", "n_trades", "win_rate",
               "exposure", "fees_paid", "borrow_paid", "final_equity", "mse_ratio"]
    pd.testing.assert_frame_equal(fast[columns], slow[columns], rtol=1e-9)
    assert fast["forecasts_reused"].sum() == slow["forecasts_reused"].sum() == 3
    pd.testing.assert_frame_equal(pd.read_parquet(fast_out / "returns.parquet"),
                                  pd.read_parquet(out / "returns.parquet"), rtol=1e-9)
    assert fast_summary["best_trial"] == summary["best_trial"]
    for key in ("psr", "dsr", "pbo"):
        assert fast_summary[key] == pytest.approx(summary[key], rel=1e-9)
    assert fast_summary["holdout"] == summary["holdout"]  # both on backtrader


def test_best_yaml_runs_as_a_backtest(grid, tmp_path):
    from engine.pipeline import run

    _, summary, out = grid
    cfg = load_config(out / "best.yaml", {"output_dir": str(tmp_path / "best")})
    sma = next(s for s in cfg.strategies if s.name == "sma_cross")
    assert sma.params == {"fast": summary["best_params"]["strategies.sma_cross.fast"],
                          "slow": summary["best_params"]["strategies.sma_cross.slow"]}
    result = run(cfg, progress=False)
    assert result.report["run"]["data"]["bars"] == BARS  # the whole data, holdout included
    holdout = json.loads((out / "holdout.json").read_text())
    row = next(r for r in result.report["strategies"] if r["name"] == "sma_cross")
    # The holdout run is the chosen config over all bars, scored on the holdout only.
    equity = result.runs[[r.label for r in result.runs].index(row["strategy"])].equity
    start = pd.Timestamp(holdout["start"])
    base = equity[equity.index < start].iloc[-1]
    assert holdout["metrics"]["total_return"] == pytest.approx(equity.iloc[-1] / base - 1,
                                                               rel=1e-9)


def test_selection_never_sees_the_holdout(grid, shocked):
    spec, summary, out = grid
    _, shocked_summary, shocked_out = shocked
    returns = pd.read_parquet(out / "returns.parquet")
    holdout_start = pd.Timestamp(summary["holdout"]["start"])
    assert returns.index.max() < holdout_start
    # Different holdout bars change nothing about selection ...
    pd.testing.assert_frame_equal(returns, pd.read_parquet(shocked_out / "returns.parquet"))
    columns = ["trial", "objective", "total_return", "n_trades", "final_equity"]
    a = pd.read_csv(out / "trials.csv")[columns].sort_values("trial", ignore_index=True)
    b = pd.read_csv(shocked_out / "trials.csv")[columns].sort_values("trial", ignore_index=True)
    pd.testing.assert_frame_equal(a, b)
    for key in ("best_trial", "psr", "dsr", "pbo"):
        assert summary[key] == shocked_summary[key]
    # ... and the holdout result does see them.
    assert summary["holdout"]["metrics"]["total_return"] != \
        shocked_summary["holdout"]["metrics"]["total_return"]


def test_rerun_skips_finished_trials(grid, capsys):
    spec, summary, out = grid
    before = {p: p.stat().st_mtime_ns for p in (out / "trials").glob("*/result.json")}
    again = run_sweep(spec, num_cpus=2, progress=True)
    assert "4 trials: 4 already finished, 0 to run" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (out / "trials").glob("*/result.json")} == before
    assert again["best_trial"] == summary["best_trial"] and again["pbo"] == summary["pbo"]


def test_two_node_cluster_with_tpe(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        sweep = sweep_dict(write_candles(tmp_path / "data"), tmp_path / "out", search="tpe",
                           trials=2, max_concurrent=2,
                           space={"strategies.sma_cross.fast": {"low": 2, "high": 5},
                                  "strategies.sma_cross.slow": [8, 12]})
        spec = load_sweep(write_sweep(tmp_path / "sweep.yaml", sweep))
        summary = run_sweep(spec, address=cluster.address, progress=False)
    finally:
        ray.shutdown()
        cluster.shutdown()
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert len(trials) == 2 and summary["trials"] == 2
    assert trials["node"].nunique() == 2  # one 1-CPU trial on each node at once
    assert trials["strategies.sma_cross.fast"].between(2, 5).all()
    assert set(trials["strategies.sma_cross.slow"]) <= {8, 12}
    assert yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())["strategies"]
