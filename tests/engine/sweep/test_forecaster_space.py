"""Sweeps over forecaster settings and kinds (``forecasters.NAME.KEY``)."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError
from engine.sweep.fast import uses_fast_path
from engine.sweep.spec import load_sweep
from engine.sweep.trial import forecast_identity, score
from tests.engine.sweep.conftest import sweep_dict, write_candles, write_sweep

FORECASTERS = [{"name": "ridge", "kind": "linear", "features": ["close", "return_1"],
                "window_len": 3},
               {"name": "net", "kind": "lstm", "window_len": 3, "layers": 1, "units": 2,
                "epochs": 1}]


def _sweep(tmp_path, space, **changes):
    csv = write_candles(tmp_path / "data")
    raw = sweep_dict(csv, tmp_path / "out", space=space, **changes)
    raw["base"].pop("model")
    raw["base"]["forecasters"] = FORECASTERS
    raw["base"]["strategies"] = [{"name": "lstm_signal", "forecaster": "ridge"},
                                 {"name": "sma_cross", "fast": 3, "slow": 10}]
    raw["objective"] = {"metric": "sharpe", "strategy": "lstm_signal"}
    return load_sweep(write_sweep(tmp_path / "sweep.yaml", raw))


def test_forecaster_settings_and_kinds_are_searched(tmp_path):
    spec = _sweep(tmp_path, {"forecasters.ridge.alpha": [0.1, 10.0],
                             "forecasters.net.kind": ["lstm", "gru"]})
    assert spec.n_trials() == 4 and not uses_fast_path(spec)
    configs = [spec.trial_config(p) for p in spec.points()]
    assert {(c.forecaster("ridge").alpha, c.forecaster("net").kind) for c in configs} == {
        (0.1, "lstm"), (0.1, "gru"), (10.0, "lstm"), (10.0, "gru")}
    # trials that change a forecaster nothing reads still share one set of forecasts only
    # when everything they fit is the same
    assert len({str(forecast_identity(c)) for c in configs}) == 4


def test_strategy_only_spaces_keep_the_fast_path(tmp_path):
    spec = _sweep(tmp_path, {"strategies.lstm_signal.entry": [0.0, 0.01]})
    assert uses_fast_path(spec)


def test_a_trial_scores_the_forecaster_its_strategy_reads(tmp_path):
    spec = _sweep(tmp_path, {"forecasters.ridge.alpha": [0.1, 10.0]})
    from engine.data import load_market_data
    from engine.sweep.runner import split_market

    split = split_market(spec, load_market_data(spec.base.data, progress=False))
    cfg = spec.trial_config(spec.points()[0])
    metrics, run, wf = score(cfg, split.selection, spec.objective)
    assert list(wf.by_name) == ["ridge", "net"]  # listed forecasters are all fit
    assert run.label == "lstm_signal(forecaster=ridge)"
    assert metrics["mse_ratio"] is not None and metrics["mse_ratio"] > 0


@pytest.mark.parametrize(("key", "expected"), [
    ("forecasters.absent.units", "forecaster 'absent' is not in the base config (ridge, net)"),
    ("forecasters.net.unit", "'unit' is not a forecaster setting (did you mean 'units'?)"),
    ("forecasters.net", "should be forecasters.NAME.KEY"),
])
def test_bad_forecaster_keys(tmp_path, key, expected):
    with pytest.raises(ConfigError, match=None) as err:
        _sweep(tmp_path, {key: [1, 2]})
    assert expected in str(err.value)


def test_a_value_the_kind_refuses_names_the_trial_value(tmp_path):
    with pytest.raises(ConfigError) as err:
        _sweep(tmp_path, {"forecasters.ridge.kind": ["linear", "lightgbm"],
                          "forecasters.ridge.alpha": [1.0]})
    assert "space.forecasters.ridge.kind value 'lightgbm' gives an invalid config" in \
        str(err.value)
