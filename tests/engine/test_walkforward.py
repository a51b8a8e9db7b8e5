"""Fold schedule, warm start, batching and the absence of lookahead."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from engine.config import ModelConfig, WalkForwardConfig
from engine.errors import ModelError
from engine.folds import first_train_end, plan_folds
from engine.walkforward import run_walkforward
from models import lstm
from models.features import close_matrix, feature_matrix, make_windows
from tests.conftest import make_ohlcv

TINY = ModelConfig(window_len=5, layers=1, units=4, epochs=2, batch_size=32, seed=11)
WF = WalkForwardConfig(train_bars=120, retrain_every=25, finetune_epochs=1)


@pytest.fixture(scope="module")
def frames():
    return {"BTC/USDT": make_ohlcv(200, seed=1, price=10_000.0),
            "ETH/USDT": make_ohlcv(200, seed=2, price=200.0)}


def test_fold_schedule_expanding():
    plans = plan_folds(200, 120, WF)
    assert [(p.train_start, p.train_end, p.forecast_start, p.forecast_end) for p in plans] == [
        (0, 120, 119, 144), (0, 145, 144, 169), (0, 170, 169, 194), (0, 195, 194, 200)]


def test_fold_schedule_rolling_keeps_first_length():
    plans = plan_folds(200, 120, WalkForwardConfig(train_bars=120, retrain_every=25,
                                                   window="rolling"))
    assert [(p.train_start, p.train_end) for p in plans] == [(0, 120), (25, 145), (50, 170),
                                                             (75, 195)]


def test_forecast_ranges_tile_the_test_period():
    plans = plan_folds(200, 120, WF)
    covered = np.concatenate([np.arange(p.forecast_start, p.forecast_end) for p in plans])
    assert covered.tolist() == list(range(119, 200))


def test_train_until_date(frames):
    index = frames["BTC/USDT"].index
    wf = WalkForwardConfig(train_until="2020-03-31", retrain_every=25)
    assert first_train_end(index, wf, 5) == 91  # 2020-01-01 .. 2020-03-31


@pytest.mark.parametrize(("train_bars", "message"), [
    (200, "leaves no bars to forecast: the data has 200 bars"),
    (10, "gives 10 training bars; at least model.window_len \\+ 2 = 12"),
])
def test_first_fold_errors(frames, train_bars, message):
    with pytest.raises(ModelError, match=message):
        first_train_end(frames["BTC/USDT"].index,
                        WalkForwardConfig(train_bars=train_bars), 10)


def test_walkforward_records_and_saves_each_fold(frames, tmp_path):
    result = run_walkforward(frames, TINY, WF, tmp_path / "models", progress=False)
    assert [f.fold for f in result.folds] == [0, 1, 2, 3]
    first, second = result.folds[0], result.folds[1]
    assert (first.epochs, first.warm_start) == (2, False)
    assert (second.epochs, second.warm_start) == (1, True)
    assert first.train_start.startswith("2020-01-01") and first.train_end.startswith("2020-04-29")
    assert first.forecast_start.startswith("2020-04-30")  # the first bar not trained on
    assert first.train_windows == 120 - 5 and first.forecasts == 25
    assert result.folds[-1].forecasts == 6  # bars 194..199, the last forecasts past the data
    for f in result.folds:
        assert (tmp_path / f.model_file).is_file()
        meta = json.loads((tmp_path / f.model_file).with_suffix(".json").read_text())
        assert meta["fold"]["fold"] == f.fold and meta["model"]["units"] == 4
    table = result.forecasts["BTC/USDT"]
    assert len(table) == 81 and table["fold"].tolist()[:26] == [0] * 25 + [1]
    assert table.index[0] == frames["BTC/USDT"].index[119]
    assert table["target"].iloc[-1] == frames["BTC/USDT"].index[-1] + pd.Timedelta("1D")


def test_saved_fold_model_reproduces_its_forecasts(frames, tmp_path):
    result = run_walkforward(frames, TINY, WF, tmp_path / "models", progress=False)
    values, _ = feature_matrix(frames, TINY.features)
    windows = make_windows(values, close_matrix(frames, list(frames)), TINY.window_len)
    model = lstm.load(tmp_path / result.folds[1].model_file)
    rows = windows.select((windows.end >= 144) & (windows.end < 169))
    predicted = lstm.predict(model, rows.X)
    np.testing.assert_allclose(result.forecasts["ETH/USDT"]["pred_target"].iloc[25:50],
                               predicted[:, 1], rtol=1e-5)


def test_warm_start_continues_from_previous_weights(frames):
    frozen = TINY.model_copy(update={"learning_rate": 1e-12})
    warm = run_walkforward(frames, frozen, WF, None, progress=False).forecasts["BTC/USDT"]
    cold = run_walkforward(frames, frozen, WF.model_copy(update={"warm_start": False}), None,
                           progress=False).forecasts["BTC/USDT"]
    # With no learning, a warm fold keeps fold 0's weights: the same function throughout.
    # Cold folds start from new random weights (seed + fold), so they differ from fold 0's.
    fold0 = warm[warm["fold"] == 0]
    np.testing.assert_allclose(warm[warm["fold"] == 0]["pred_target"],
                               cold[cold["fold"] == 0]["pred_target"])
    model0 = run_walkforward(frames, frozen, WalkForwardConfig(train_bars=120, retrain_every=200),
                             None, progress=False).forecasts["BTC/USDT"]
    np.testing.assert_allclose(warm["pred_target"], model0["pred_target"], rtol=1e-5)
    assert not np.allclose(cold[cold["fold"] == 1]["pred_target"],
                           model0.loc[cold[cold["fold"] == 1].index, "pred_target"])
    assert len(fold0) == 25


def test_no_lookahead_truncated_and_rewritten_future(frames):
    full = run_walkforward(frames, TINY, WF, None, progress=False).forecasts
    cut_at = 160  # data ends at bar 159
    truncated = {s: f.iloc[:cut_at] for s, f in frames.items()}
    short = run_walkforward(truncated, TINY, WF, None, progress=False).forecasts
    rewritten = {s: f.copy() for s, f in frames.items()}
    for f in rewritten.values():
        f.iloc[cut_at:, :] *= 1.5  # a different future
    changed = run_walkforward(rewritten, TINY, WF, None, progress=False).forecasts
    for symbol in frames:
        upto = full[symbol].index[full[symbol].index < frames[symbol].index[cut_at]]
        assert len(upto) == cut_at - 119
        for other in (short, changed):
            np.testing.assert_array_equal(full[symbol].loc[upto, "pred_close"].to_numpy(),
                                          other[symbol].loc[upto, "pred_close"].to_numpy())
