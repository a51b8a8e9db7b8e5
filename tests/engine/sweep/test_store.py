"""Sweeps use the model store like a backtest: they read the folds it holds and add theirs."""

from __future__ import annotations

import copy
import re

import pandas as pd
import pytest

from engine.config import validate_config
from engine.pipeline import run
from engine.sweep.runner import run_sweep
from engine.sweep.spec import load_sweep
from tests.engine.sweep.conftest import sweep_dict, write_candles, write_sweep

pytestmark = pytest.mark.slow


def _entries(folder) -> int:
    store = folder / "cache" / "models"
    return len([p for p in store.iterdir() if p.is_dir() and not p.name.startswith(".")]) \
        if store.is_dir() else 0


def _sweep(tmp_path, csv, name: str, capsys) -> tuple[pd.DataFrame, str]:
    raw = sweep_dict(csv, tmp_path / name)  # strategy parameters only: in this process
    run_sweep(load_sweep(write_sweep(tmp_path / f"{name}.yaml", raw)), progress=True)
    return pd.read_csv(tmp_path / name / "trials.csv"), capsys.readouterr().out


def test_sweeps_and_backtests_share_the_model_store(tmp_path, capsys):
    csv = write_candles(tmp_path / "data")
    # 1. A first sweep trains the two folds of the selection period once (the other
    # trials read that trial's forecasts) and stores them; the chosen trial's run over
    # all the data for the holdout stores the third fold.
    trials, out = _sweep(tmp_path, csv, "first", capsys)
    assert trials["folds_trained"].sum() == 2 and trials["forecasts_reused"].sum() == 3
    assert _entries(tmp_path) == 3
    assert "folds 2 trained, 0 from the model store" in out
    assert "forecasts of an earlier trial" in out
    # Each line shows the trial's own time, not the time since the sweep started.
    assert len(re.findall(r"\] t[0-9a-f]{10} sharpe \S+ \(best \S+\) in \d+\.\d+s", out)) == 4
    # 2. A backtest of the base config trains nothing.
    base = copy.deepcopy(sweep_dict(csv, tmp_path / "first")["base"])
    result = run(validate_config({**base, "output_dir": str(tmp_path / "backtest")}),
                 progress=False)
    assert result.report["run"]["folds_trained"] == 0
    assert result.report["run"]["folds_reused"] == 3
    # 3. Another sweep of the same config starts scoring at once: every fold is stored.
    trials, out = _sweep(tmp_path, csv, "second", capsys)
    assert trials["folds_trained"].sum() == 0 and trials["folds_reused"].max() == 2
    assert "folds 0 trained, 2 from the model store" in out
    assert _entries(tmp_path) == 3
