"""Sweep files: what is accepted, and the one-line errors for what is not."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.errors import ConfigError
from engine.sweep.__main__ import main
from engine.sweep.spec import apply_params, load_sweep, trial_key
from tests.engine.sweep.conftest import sweep_dict, write_candles, write_sweep


@pytest.fixture
def csv(tmp_path):
    return write_candles(tmp_path / "data")


def _load(tmp_path, csv, **changes):
    return load_sweep(write_sweep(tmp_path / "sweep.yaml", sweep_dict(csv, tmp_path / "out",
                                                                        **changes)))


def _cli_error(tmp_path, csv, capsys, **changes) -> str:
    from engine.cli import run_cli

    path = write_sweep(tmp_path / "sweep.yaml", sweep_dict(csv, tmp_path / "out", **changes))
    assert run_cli(main, [str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_grid_points_and_trial_configs(tmp_path, csv):
    spec = _load(tmp_path, csv)
    points = spec.points()
    assert spec.n_trials() == 4 and len(points) == 4
    assert {(p["strategies.sma_cross.fast"], p["strategies.sma_cross.slow"])
            for p in points} == {(2, 8), (2, 12), (4, 8), (4, 12)}
    cfg = spec.trial_config(points[-1])
    sma = next(s for s in cfg.strategies if s.name == "sma_cross")
    assert sma.params == {"fast": 4, "slow": 12}
    assert len({trial_key(p) for p in points}) == 4
    assert spec.objective.symbol == "BTC/USDT" and spec.objective.mode == "max"


def test_random_points_are_seeded_and_in_range(tmp_path, csv):
    space = {"model.learning_rate": {"low": 0.0001, "high": 0.01, "log": True},
             "walkforward.retrain_every": {"low": 10, "high": 40, "step": 10},
             "model.units": [2, 3]}
    spec = _load(tmp_path, csv, search="random", trials=20, seed=3, space=space)
    points = spec.points()
    assert points == spec.points()  # the same list every time: resuming depends on it
    assert len(points) == 20
    for p in points:
        assert 0.0001 <= p["model.learning_rate"] <= 0.01
        assert p["walkforward.retrain_every"] in (10, 20, 30, 40)
        assert p["model.units"] in (2, 3)
    assert len({p["model.learning_rate"] for p in points}) == 20
    repeats = _load(tmp_path, csv, search="random", trials=10, space={"model.units": [2, 3]})
    assert repeats.points() == [{"model.units": 3}, {"model.units": 2}] or \
        repeats.points() == [{"model.units": 2}, {"model.units": 3}]
    assert repeats.n_trials() == 2  # repeated draws run once


def test_apply_params_by_strategy_index_and_section():
    raw = {"model": {"units": 4}, "strategies": [{"name": "a", "params": {}},
                                                 {"name": "b", "params": {"x": 1}}]}
    out = apply_params(raw, {"model.units": 8, "strategies.1.x": 2, "strategies.a.y": 3})
    assert out["model"]["units"] == 8 and out["strategies"][1]["params"]["x"] == 2
    assert out["strategies"][0]["params"] == {"y": 3}
    assert raw["model"]["units"] == 4  # the input is left alone


def test_unknown_key(tmp_path, csv, capsys):
    err = _cli_error(tmp_path, csv, capsys, space={"model.unit": [2, 4]})
    assert "space key model.unit is not a config key (did you mean 'model.units'?)" in err


def test_unknown_strategy_parameter(tmp_path, csv, capsys):
    from engine.sweep.trial import check_strategies

    spec = _load(tmp_path, csv, space={"strategies.sma_cross.fats": [2]})  # imports no strategy
    with pytest.raises(ConfigError, match="sma_cross has no parameter 'fats'.*'fast'"):
        check_strategies(spec)
    err = _cli_error(tmp_path, csv, capsys, space={"strategies.sma_cross.fats": [2]})
    assert "space key strategies.sma_cross.fats: sma_cross has no parameter 'fats'" in err
    assert not (tmp_path / "out").exists()  # refused before the sweep directory or the data


def test_strategy_values_and_combinations_are_checked_before_the_data(tmp_path, csv):
    from engine.sweep.trial import check_strategies

    with pytest.raises(ConfigError, match=r"space.strategies.sma_cross.fast value 2.5 gives "
                                          r"an invalid config: strategies\[0\].fast = 2.5 "
                                          r"must be a int"):
        check_strategies(_load(tmp_path, csv, space={"strategies.sma_cross.fast": [2, 2.5]}))
    # each value fits the base config (slow 10, fast 3); one combination does not
    with pytest.raises(ConfigError, match=r"trial \{'strategies.sma_cross.fast': 9, "
                                          r"'strategies.sma_cross.slow': 8\}: "
                                          r"strategies\[0\].slow = 8 must be greater than fast"):
        check_strategies(_load(tmp_path, csv, space={"strategies.sma_cross.fast": [2, 9],
                                                     "strategies.sma_cross.slow": [8]}))


def test_empty_space(tmp_path, csv, capsys):
    err = _cli_error(tmp_path, csv, capsys, space={})
    assert "space is empty" in err


def test_empty_value_list(tmp_path, csv):
    with pytest.raises(ConfigError, match="space.model.units is an empty list"):
        _load(tmp_path, csv, space={"model.units": []})


def test_objective_strategy_not_in_base(tmp_path, csv, capsys):
    err = _cli_error(tmp_path, csv, capsys, objective={"metric": "sharpe",
                                                       "strategy": "buy_and_hold"})
    assert "objective.strategy = 'buy_and_hold' is not a strategy of the base config " \
           "(sma_cross, lstm_signal)" in err


def test_holdout_longer_than_data(tmp_path, csv, capsys):
    err = _cli_error(tmp_path, csv, capsys, split={"holdout_bars": 500})
    assert "split.holdout_bars = 500 is not shorter than the data (120 bars" in err
    assert not (tmp_path / "out" / "trials").exists()


def test_holdout_leaving_too_little_for_selection(tmp_path, csv, capsys):
    err = _cli_error(tmp_path, csv, capsys, split={"holdout_bars": 80})
    assert "the selection period" in err and "holdout" in err


def test_bad_values_and_shapes(tmp_path, csv):
    with pytest.raises(ConfigError, match=r"space.model.units value 0 gives an invalid "
                                          r"config: model.units = 0 must be >= 1"):
        _load(tmp_path, csv, space={"model.units": [4, 0]})
    with pytest.raises(ConfigError, match="grid search cannot enumerate"):
        _load(tmp_path, csv, space={"model.dropout": {"low": 0.0, "high": 0.5}})
    with pytest.raises(ConfigError, match="search: tpe needs trials"):
        _load(tmp_path, csv, search="tpe", space={"model.dropout": {"low": 0.0, "high": 0.5}})
    with pytest.raises(ConfigError, match="data.start cannot be searched"):
        _load(tmp_path, csv, space={"data.start": ["2020-01-02"]})
    with pytest.raises(ConfigError, match="unknown key spaces"):
        _load(tmp_path, csv, spaces={})
    with pytest.raises(ConfigError, match="low = 1.0 must be below high = 0.5"):
        _load(tmp_path, csv, search="random", trials=2,
              space={"model.dropout": {"low": 1.0, "high": 0.5}})


def test_output_dir_of_another_sweep_is_refused(tmp_path, csv):
    from engine.sweep.runner import prepare_dir

    prepare_dir(_load(tmp_path, csv))
    other = _load(tmp_path, csv, space={"strategies.sma_cross.fast": [3]})
    with pytest.raises(ConfigError, match="holds a different sweep"):
        prepare_dir(other)


def test_a_refused_trial_is_recorded_not_crashed(tmp_path, csv):
    from engine.data import load_market_data
    from engine.sweep.runner import split_market
    from engine.sweep.trial import finished, run_trial

    spec = _load(tmp_path, csv, space={"walkforward.train_bars": [40, 100]})
    split = split_market(spec, load_market_data(spec.base.data, progress=False))
    assert len(split.selection.index) == 95 and split.holdout_bars == 25
    params = {"walkforward.train_bars": 100}  # more than the 95 selection bars
    record = run_trial(params, spec.trial_config(params), split.selection, spec.objective,
                       tmp_path / "trials")
    assert record["objective"] is None
    assert "walkforward.train_bars = 100 leaves no bars to forecast" in record["error"]
    assert list(finished(tmp_path / "trials")) == [record["key"]]
    assert not (tmp_path / "trials" / record["key"] / "returns.parquet").exists()


def test_split_by_holdout_start(tmp_path, csv):
    from engine.data import load_market_data
    from engine.sweep.runner import split_market

    spec = _load(tmp_path, csv, split={"holdout_start": "2020-04-01"})
    split = split_market(spec, load_market_data(spec.base.data, progress=False))
    assert split.selection.index[-1] == pd.Timestamp("2020-03-31", tz="UTC")
    assert split.holdout_bars == 120 - 91 and split.full.index[-1] > split.holdout_start
    late = _load(tmp_path, csv, split={"holdout_start": "2021-01-01"})
    with pytest.raises(ConfigError, match="holdout_start = 2021-01-01 is not inside the data"):
        split_market(late, split.full)


def test_mse_ratio_objective_on_a_symbol_only_forecast(tmp_path, csv):
    from engine.data import load_market_data
    from engine.sweep.runner import split_market
    from engine.sweep.trial import read_returns, run_trial

    spec = _load(tmp_path, csv, objective={"metric": "mse_ratio", "symbol": "ETH/USDT"},
                 space={"model.units": [2]})
    assert spec.objective.mode == "min" and spec.objective.strategy == "sma_cross"
    split = split_market(spec, load_market_data(spec.base.data, progress=False))
    params = {"model.units": 2}
    record = run_trial(params, spec.trial_config(params), split.selection, spec.objective,
                       tmp_path / "trials")
    assert record["error"] is None and record["objective"] == record["metrics"]["mse_ratio"] > 0
    returns = read_returns(tmp_path / "trials" / record["key"])  # sma_cross on BTC/USDT
    assert len(returns) > 0 and returns.index.max() < split.holdout_start
    assert record["metrics"]["forecasts_reused"] is False
    # A trial that changes only strategy parameters reuses the saved forecasts.
    other = {"model.units": 2, "strategies.sma_cross.fast": 4}
    second = run_trial(other, spec.trial_config(other), split.selection, spec.objective,
                       tmp_path / "trials")
    assert second["metrics"]["forecasts_reused"] is True
    assert second["objective"] == record["objective"]  # the very same forecasts
    assert second["metrics"]["n_trades"] != record["metrics"]["n_trades"] or \
        second["metrics"]["total_return"] != record["metrics"]["total_return"]
    assert len(list((tmp_path / "forecasts").glob("*.pkl"))) == 1


def test_tpe_is_told_finished_trials_and_proposes_within_the_space(tmp_path, csv):
    from engine.sweep.runner import _optuna_search, tune_params

    space = {"strategies.sma_cross.fast": {"low": 2, "high": 5},
             "model.dropout": {"low": 0.0, "high": 0.5},
             "strategies.sma_cross.slow": [8, 12]}
    spec = _load(tmp_path, csv, search="tpe", trials=5, space=space)
    done = {}
    for fast, dropout, slow, score in ((2, 0.1, 12, 0.5), (4, 0.3, 8, -0.2), (3, 0.2, 8, None)):
        params = {"strategies.sma_cross.fast": fast, "model.dropout": dropout,
                  "strategies.sma_cross.slow": slow}
        done[trial_key(params)] = {"key": trial_key(params), "params": params,
                                   "objective": score}
    search = _optuna_search(spec, done)
    told = search._ot_study.trials  # the scored trials, as completed Optuna trials
    assert sorted(t.value for t in told) == [-0.2, 0.5]
    assert {t.params["p2"] for t in told} == {0, 1}  # list values travel as their index
    params = tune_params(spec, search.suggest("next"))
    assert 2 <= params["strategies.sma_cross.fast"] <= 5
    assert isinstance(params["strategies.sma_cross.fast"], int)
    assert 0.0 <= params["model.dropout"] <= 0.5
    assert params["strategies.sma_cross.slow"] in (8, 12)
