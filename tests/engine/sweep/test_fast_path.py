"""The fast path: strategy-only sweeps score their trials on the kernel, with the metrics
the backtrader path gives."""

from __future__ import annotations

import pytest

from engine.data import load_market_data
from engine.sweep.fast import uses_fast_path
from engine.sweep.runner import split_market
from engine.sweep.spec import load_sweep
from engine.sweep.trial import score
from tests.engine.sweep.conftest import sweep_dict, write_candles, write_sweep

TRIALS = [
    ("sma_cross", {"strategies.sma_cross.fast": 2, "strategies.sma_cross.slow": 8}),
    ("sma_cross", {"strategies.sma_cross.fast": 4, "strategies.sma_cross.short": True,
                   "strategies.sma_cross.size": 0.6}),
    ("lstm_signal", {"strategies.lstm_signal.entry": 0.0}),
    ("lstm_signal", {"strategies.lstm_signal.entry": 0.002, "strategies.lstm_signal.exit": -0.002,
                     "strategies.lstm_signal.short": True, "strategies.lstm_signal.size": 0.5}),
]


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    return write_candles(tmp_path_factory.mktemp("data"))


def _spec(tmp_path, csv, **changes):
    return load_sweep(write_sweep(tmp_path / "sweep.yaml",
                                  sweep_dict(csv, tmp_path / "out", **changes)))


@pytest.mark.parametrize("case", range(len(TRIALS)))
def test_a_trial_scores_the_same_on_the_kernel_and_on_backtrader(tmp_path_factory, csv, case):
    strategy, params = TRIALS[case]
    folder = tmp_path_factory.getbasetemp() / "fast_trials"  # one walk-forward for all cases
    folder.mkdir(exist_ok=True)
    spec = _spec(folder, csv, space={k: [v] for k, v in params.items()},
                 objective={"metric": "sharpe", "strategy": strategy})
    assert uses_fast_path(spec)
    selection = split_market(spec, load_market_data(spec.base.data, progress=False)).selection
    cfg = spec.trial_config(params)
    cache = folder / "forecasts"
    slow, slow_run, _ = score(cfg, selection, spec.objective, cache)
    fast, fast_run, _ = score(cfg, selection, spec.objective, cache, fast=True)
    assert slow_run.label == fast_run.label and slow_run.symbol == fast_run.symbol
    assert slow["n_trades"] > 0 and slow["n_trades"] == fast["n_trades"]
    assert fast.keys() == slow.keys()
    assert fast.pop("forecasts_reused") is True  # the backtrader run just saved them
    slow.pop("forecasts_reused")
    assert (fast.pop("folds_trained"), fast.pop("folds_reused")) == (0, 0)  # none touched
    slow.pop("folds_trained"), slow.pop("folds_reused")  # where its forecasts came from
    for key, value in slow.items():
        if isinstance(value, float):
            assert fast[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
        else:
            assert fast[key] == value, key
    returns = fast_run.equity.pct_change().iloc[1:]
    assert returns.index.equals(slow_run.equity.index[1:])


def test_which_sweeps_take_the_fast_path(tmp_path, csv):
    assert uses_fast_path(_spec(tmp_path, csv))  # sma_cross lengths only
    assert not uses_fast_path(_spec(tmp_path, csv, fast_path=False))
    assert not uses_fast_path(_spec(tmp_path, csv, space={"strategies.sma_cross.fast": [2],
                                                         "model.units": [2, 3]}))
    base = sweep_dict(csv, tmp_path)["base"]
    portfolio = {**base, "backtest": {"symbols": ["BTC/USDT", "ETH/USDT"], "portfolio": True}}
    assert not uses_fast_path(_spec(tmp_path, csv, base=portfolio))
