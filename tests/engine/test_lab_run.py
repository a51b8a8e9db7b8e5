"""A backtest with several forecasters, end to end, and the forecaster config's errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.config import load_config, validate_config
from engine.errors import ConfigError
from engine.pipeline import NO_FORECASTER, run
from tests.conftest import config_dict, write_config
from tests.engine.test_forecasters import ar_frames

REPO = Path(__file__).resolve().parents[2]
LAB = {
    "forecasters": [
        {"name": "ridge", "kind": "linear", "target": "log_return",
         "features": ["close", "return_1", "rsi_5"], "window_len": 5},
        {"name": "trees", "kind": "lightgbm", "features": ["return_1", "volatility_5"],
         "n_estimators": 20},
        {"name": "net", "kind": "lstm", "target": "log_return", "window_len": 5, "layers": 1,
         "units": 4, "epochs": 2, "seeds": 2},
    ],
    "walkforward": {"train_bars": 250, "retrain_every": 100, "finetune_epochs": 1},
    "strategies": [{"name": "lstm_signal", "forecaster": "net"}, "lstm_signal",
                   "buy_and_hold"],
    "backtest": {"symbols": ["BTC/USDT"]},
}


def csv_data(tmp_path: Path) -> dict:
    paths = {}
    for symbol, frame in ar_frames(450).items():
        path = tmp_path / f"{symbol.replace('/', '-')}.csv"
        frame.rename_axis("timestamp").reset_index().to_csv(path, index=False)
        paths[symbol] = str(path)
    return {"csv": paths, "start": "2020-01-01"}


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab")
    config = write_config(tmp, config_dict(tmp, data=csv_data(tmp), **LAB))
    out = tmp / "run"
    proc = subprocess.run([sys.executable, "-m", "engine.backtest", str(config), "--output",
                           str(out), "--no-progress"], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_every_forecaster_is_reported_and_judged(lab_run):
    out, _ = lab_run
    report = json.loads((out / "report.json").read_text())
    assert list(report["forecasters"]) == ["ridge", "trees", "net"]
    ridge = report["forecasters"]["ridge"]["BTC/USDT"]
    assert ridge["mse"] == report["forecast"]["BTC/USDT"]["mse"]  # the first forecaster's
    assert (ridge["kind"], ridge["target"]) == ("linear", "log_return")
    assert report["forecasters"]["trees"]["BTC/USDT"]["target"] == "log_return"
    assert len(report["forecasters"]["net"]["ETH/USDT"]["members"]) == 2
    matrix = report["forecast_comparison"]["ETH/USDT"]["diebold_mariano"]
    assert list(matrix) == ["ridge", "trees", "net", "persistence"]
    assert all(0 <= matrix[a][b]["p_holm"] <= 1 for a in matrix for b in matrix[a])
    assert report["model_confidence_set"]["BTC/USDT"]
    assert set(report["model_confidence_set"]["BTC/USDT"]) <= set(matrix)
    assert report["spa"]["BTC/USDT"]["benchmark"] == "buy_and_hold"
    assert report["run"]["forecasters"] == ["ridge", "trees", "net"]
    rows = {r["strategy"]: r for r in report["strategies"]}
    # a strategy naming no forecaster trades on the first, and its label says so
    assert set(rows) == {"lstm_signal(forecaster=ridge)", "lstm_signal(forecaster=net)",
                         "buy_and_hold"}
    assert rows["lstm_signal(forecaster=net)"]["forecaster"] == "net"
    spread = rows["lstm_signal(forecaster=net)"]["seed_spread"]
    assert spread["seeds"] == 2
    assert spread["total_return"]["min"] <= spread["total_return"]["median"] \
        <= spread["total_return"]["max"]
    assert "seed_spread" not in rows["lstm_signal(forecaster=ridge)"]
    assert rows["buy_and_hold"]["forecaster"] is None


def test_the_written_config_names_the_default_forecaster(lab_run, tmp_path):
    out, _ = lab_run
    config = load_config(out / "config.yaml")
    assert [s.params.get("forecaster") for s in config.strategies] == ["net", "ridge", None]
    raw = config.to_dict()
    raw["strategies"].append({"name": "lstm_signal", "params": {}})
    raw["output_dir"] = str(tmp_path / "twice")
    with pytest.raises(ConfigError, match=r"strategies\[3\] is lstm_signal\(forecaster=ridge\) "
                       "once the forecaster it reads by default is named"):
        run(validate_config(raw), progress=False)


def test_predictions_name_their_forecaster(lab_run):
    out, _ = lab_run
    table = pd.read_csv(out / "predictions.csv")
    assert list(table.columns) == ["forecaster", "timestamp", "symbol", "actual_close",
                                   "predicted_close", "fold"]
    assert table.groupby("forecaster").size().to_dict() == {"net": 402, "ridge": 402,
                                                            "trees": 402}
    models = out / "models"
    assert (models / "trees" / "fold_000" / "member_0_output_1.txt").is_file()
    # Two seeds are one seed ensemble: one model.keras holds both members.
    assert sorted(p.name for p in (models / "net" / "fold_001").glob("*.keras")) == \
        ["model.keras"]


def test_summary_and_page_show_the_comparison(lab_run):
    out, proc = lab_run
    assert "Forecasters on one scale" in proc.stdout
    assert max(len(line) for line in proc.stdout.splitlines()
               if not line.startswith(("Folds:", "Written to"))) <= 120
    flat = proc.stdout.replace("\n  ", " ").strip().splitlines()  # long sentences wrap
    sentences = [line for line in flat if "the best forecaster is" in line]
    assert [s.split(":")[0] for s in sentences] == ["BTC/USDT", "ETH/USDT"]
    assert "persistence at 5% (Diebold-Mariano, Holm-adjusted)." in sentences[0]
    assert "SPA p-value" in proc.stdout
    page = (out / "report.html").read_text()
    for text in ("Forecasters compared", "Diebold-Mariano matrix", "Model confidence set",
                 "Seeds", "Superior predictive ability"):
        assert text in page, text


def test_strategies_without_forecasts_train_nothing(tmp_path):
    data = csv_data(tmp_path)
    strategies = [{"name": "sma_cross", "fast": 5, "slow": 20}, "buy_and_hold"]
    common = {"walkforward": LAB["walkforward"], "backtest": LAB["backtest"]}
    bare = validate_config(config_dict(tmp_path, data=data, strategies=strategies,
                                       output_dir=str(tmp_path / "bare"), **common))
    result = run(bare, progress=False)
    assert result.walkforward.by_name == {} and result.report["run"]["folds_trained"] == 0
    assert result.report["run"]["device"] == NO_FORECASTER
    assert result.report["forecast"] == {} and not (result.output_dir / "models").exists()
    with_model = validate_config(config_dict(
        tmp_path, data=data, strategies=[*strategies, "lstm_signal"],
        model={"window_len": 5, "layers": 1, "units": 2, "epochs": 1},
        output_dir=str(tmp_path / "model"), **common))
    trained = run(with_model, progress=False)
    assert trained.report["run"]["folds_trained"] == 3
    for label in ("sma_cross(fast=5,slow=20)", "buy_and_hold"):
        a = next(r for r in result.runs if r.label == label).equity
        b = next(r for r in trained.runs if r.label == label).equity
        pd.testing.assert_series_equal(a, b)  # the same test period either way


@pytest.mark.parametrize(("change", "expected"), [
    ({"kind": "lsmt"}, "forecasters[0].kind = 'lsmt' is not a forecaster kind (did you mean "
                       "'lstm'?"),
    ({"features": ["close", "retrun_5"]}, "forecasters[0].features[1] = 'retrun_5' is not a "
                                          "feature"),
    ({"features": ["rsi_1"]}, "forecasters[0].features[0] = 'rsi_1' has K = 1 outside 2..250"),
    ({"features": ["hour"]}, "forecasters[0].features[0] = 'hour' needs an intraday "
                             "data.timeframe (it is 1d)"),
    ({"kind": "linear", "target": "direction"}, "forecasters[0].target = 'direction' needs a "
                                                "classifier and kind linear is regression only"),
    ({"seeds": 0}, "forecasters[0].seeds = 0 must be >= 1"),
    ({"kind": "linear", "units": 8}, "forecasters[0].units is not a setting of kind linear"),
    ({"kind": "custom", "class": "tests.models.custom_forecaster:NoPredict"},
     "forecasters[0].class = 'tests.models.custom_forecaster:NoPredict' class "
     "tests.models.custom_forecaster:NoPredict lacks predict"),
    ({"kind": "custom", "class": "tests.models.absent:Model"},
     "forecasters[0].class = 'tests.models.absent:Model' cannot import module"),
    ({"kind": "custom", "class": "tests.models.custom_forecaster:Absent"},
     "has no class 'Absent'"),
])
def test_bad_forecaster_is_one_line_naming_the_key(tmp_path, change, expected):
    raw = {"forecasters": [{"name": "a", "kind": "lstm", **change}]}
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, raw))
    message = str(err.value)
    assert expected in message and "\n" not in message


@pytest.mark.parametrize(("raw", "expected"), [
    ({"forecasters": [{"name": "a", "kind": "linear"}, {"name": "a", "kind": "gru"}]},
     "forecasters[1].name = 'a' names two forecasters"),
    ({"forecasters": [{"name": "a", "kind": "linear"}],
      "strategies": [{"name": "lstm_signal", "forecaster": "b"}]},
     "strategies[0].forecaster = 'b' is not a forecaster of this config (a)"),
    ({"model": {"units": 4}, "forecasters": [{"name": "a", "kind": "linear"}]},
     "model cannot be given together with forecasters:"),
    ({"forecasters": []}, "forecasters = [] must list at least one forecaster"),
    ({"rl": {"forecaster": "b"}}, "rl.forecaster = 'b' is not a forecaster of this config"),
])
def test_bad_lab_config_is_one_line(tmp_path, raw, expected):
    with pytest.raises(ConfigError, match=None) as err:
        load_config(write_config(tmp_path, raw))
    assert expected in str(err.value)


def test_cli_reports_a_missing_forecaster_with_exit_2(tmp_path):
    raw = {"forecasters": [{"name": "a", "kind": "linear"}],
           "strategies": [{"name": "lstm_signal", "forecaster": "gru"}]}
    proc = subprocess.run([sys.executable, "-m", "engine.backtest",
                           str(write_config(tmp_path, raw))], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'test.yaml'}: strategies[0].forecaster = 'gru' is not a "
        "forecaster of this config (a)"]


def test_shipped_forecasters_config_runs_with_tiny_sizes(tmp_path):
    """configs/forecasters.yaml as shipped, its data read from CSV and every size tiny."""
    import yaml

    raw = yaml.safe_load((REPO / "configs" / "forecasters.yaml").read_text())
    raw["data"].update(csv_data(tmp_path), cache_dir=str(tmp_path / "cache"))
    for entry in raw["forecasters"]:
        if entry["kind"] in ("lstm", "gru", "transformer"):
            entry.update(units=4, layers=1, epochs=1, seeds=2)
        if entry["kind"] == "lightgbm":
            entry.update(n_estimators=5)
    raw["walkforward"].update(train_bars=300, retrain_every=100, finetune_epochs=1)
    raw["output_dir"] = str(tmp_path / "out")
    result = run(validate_config(raw), progress=False)
    names = ["lstm", "gru", "transformer", "linear", "lightgbm"]
    assert list(result.report["forecasters"]) == names
    assert {r["strategy"] for r in result.report["strategies"]} == {
        *(f"lstm_signal(forecaster={n})" for n in names), "buy_and_hold"}
    assert set(result.report["spa"]) == {"BTC/USDT", "ETH/USDT"}


def test_the_environment_observes_the_chosen_forecaster(tmp_path):
    pytest.importorskip("gymnasium")
    from engine.rl import make_env

    forecasters = [{"name": "a", "kind": "linear", "window_len": 3},
                   {"name": "b", "kind": "linear", "window_len": 6, "features": ["close"]}]
    raw = config_dict(tmp_path, data=csv_data(tmp_path), forecasters=forecasters,
                      walkforward=LAB["walkforward"], backtest=LAB["backtest"],
                      strategies=["buy_and_hold"], rl={"forecaster": "b", "use_forecast": True})
    env = make_env(validate_config(raw), seed=0)
    observation, _ = env.reset(seed=0)
    # b's window (6 bars x the close of 2 symbols), b's forecast, exposure, cash share
    assert observation.shape == (6 * 2 + 1 + 1 + 1,)
    assert np.isfinite(observation).all()
