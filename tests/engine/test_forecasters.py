"""The forecaster lab: every kind learns where there is something to learn, claims nothing
on a random walk, never looks ahead, reuses its stored folds, and is judged with the
others (Diebold-Mariano, model confidence set, SPA)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.config import ModelConfig, WalkForwardConfig, forecaster_from_model, validate_config
from engine.fold_data import fold_keys
from engine.folds import plan_folds
from engine.models_store import FORMAT, ModelStore, fold_key, rows_digest
from engine.report.forecasters import comparison, return_errors, spa, verdicts
from engine.walkforward import run_walkforward
from models.runtime import runtime
from tests.conftest import make_ohlcv

WF = WalkForwardConfig(train_bars=250, retrain_every=125, finetune_epochs=3)
NEURAL = {"layers": 1, "units": 8, "epochs": 15, "batch_size": 32, "learning_rate": 0.01}
KINDS = {
    "lstm": {"kind": "lstm", **NEURAL},
    "gru": {"kind": "gru", **NEURAL},
    "transformer": {"kind": "transformer", **NEURAL, "heads": 2},
    "linear": {"kind": "linear"},
    "lightgbm": {"kind": "lightgbm", "n_estimators": 60, "num_leaves": 7},
    "custom": {"kind": "custom", "class": "tests.models.custom_forecaster:LastReturnOLS"},
}


def ar_frames(n: int = 500, phi: float = 0.6, seed: int = 0) -> dict[str, pd.DataFrame]:
    """BTC and ETH whose next log return is ``phi`` x this one plus noise (learnable)."""
    frames = {}
    for k, (symbol, price) in enumerate((("BTC/USDT", 10_000.0), ("ETH/USDT", 200.0))):
        rng = np.random.default_rng(seed + k)
        noise = rng.normal(0, 0.02, n)
        r = np.zeros(n)
        for t in range(1, n):
            r[t] = phi * r[t - 1] + noise[t]
        close = price * np.exp(np.cumsum(r))
        open_ = np.concatenate([[price], close[:-1]])
        index = pd.date_range("2020-01-01", periods=n, freq="1D", tz="UTC", name="timestamp")
        frames[symbol] = pd.DataFrame({
            "open": open_, "high": np.maximum(open_, close) * 1.004,
            "low": np.minimum(open_, close) * 0.996, "close": close,
            "volume": rng.uniform(100, 1000, n)}, index=index)
    return frames


def forecaster(name: str, timeframe: str = "1d", **changes):
    entry = {"name": name, "target": "log_return", "features": ["close", "return_1"],
             "window_len": 5, **KINDS[name], **changes}
    raw = {"forecasters": [entry], "data": {"timeframe": timeframe}}
    return validate_config(raw).forecasters[0]


def one_sided_p(wf, frames, name: str, symbol: str) -> float:
    """p-value of "``name`` beats persistence" on the common scale (Diebold-Mariano)."""
    closes = {s: f["close"] for s, f in frames.items()}
    test = comparison(wf, closes)[symbol]["diebold_mariano"][name]["persistence"]
    p = test["p_value"]
    return p / 2 if test["statistic"] < 0 else 1 - p / 2


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_beats_persistence_where_there_is_a_signal(kind):
    frames = ar_frames(700)
    wf = run_walkforward(frames, [forecaster(kind)], WF, progress=False)
    for symbol in frames:
        assert one_sided_p(wf, frames, kind, symbol) < 0.01, symbol


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_no_kind_claims_an_edge_on_a_random_walk(kind):
    frames = {"BTC/USDT": make_ohlcv(700, seed=5, price=10_000.0, drift=0.0),
              "ETH/USDT": make_ohlcv(700, seed=6, price=200.0, drift=0.0)}
    wf = run_walkforward(frames, [forecaster(kind)], WF, progress=False)
    for symbol in frames:
        assert one_sided_p(wf, frames, kind, symbol) >= 0.01, symbol


def test_direction_classifier_forecasts_a_probability_and_a_return():
    frames = ar_frames(400)
    fc = forecaster("lightgbm", target="direction", n_estimators=30)
    wf = run_walkforward(frames, [fc], WF.model_copy(update={"train_bars": 200}), progress=False)
    table = wf.tables()["BTC/USDT"]
    assert table["pred_target"].between(0, 1).all()
    # (2p - 1) x the fold's mean absolute return: signs follow the probability
    assert (np.sign(table["pred_return"]) == np.sign(table["pred_target"] - 0.5)).all()
    assert table["pred_return"].abs().max() < 0.1
    assert one_sided_p(wf, frames, "lightgbm", "BTC/USDT") < 0.05


# --- no lookahead, for every feature and every kind ------------------------------------------

ALL_FEATURES = ["open", "high", "low", "close", "volume", "return_3", "volatility_4", "rsi_3",
                "volume_z_4", "hour", "weekday"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_no_forecast_changes_when_later_bars_change(kind):
    frames = {"BTC/USDT": make_ohlcv(220, seed=1, price=10_000.0, freq="1h"),
              "ETH/USDT": make_ohlcv(220, seed=2, price=200.0, freq="1h")}
    settings = {"epochs": 1, "units": 4} if kind in ("lstm", "gru", "transformer") else {}
    fc = forecaster(kind, "1h", features=ALL_FEATURES, **settings)
    wf = WalkForwardConfig(train_bars=120, retrain_every=30, finetune_epochs=1)
    full = run_walkforward(frames, [fc], wf, progress=False).tables()
    cut = 170
    rewritten = {s: f.copy() for s, f in frames.items()}
    for f in rewritten.values():
        f.iloc[cut:, :] *= 1.7
    truncated = {s: f.iloc[:cut] for s, f in frames.items()}
    # A network's batched call may round differently for batches of another size (the
    # truncated run's last fold forecasts fewer windows): 1e-9 apart, not a lookahead.
    rtol = 1e-7 if kind in ("lstm", "gru", "transformer") else 0
    for other in (rewritten, truncated):
        tables = run_walkforward(other, [fc], wf, progress=False).tables()
        for symbol, table in full.items():
            decided = table.index[table.index < frames[symbol].index[cut]]
            assert len(decided) == cut - 119
            np.testing.assert_allclose(table.loc[decided, "pred_close"].to_numpy(),
                                       tables[symbol].loc[decided, "pred_close"].to_numpy(),
                                       rtol=rtol, atol=0)


# --- the model store, per kind ----------------------------------------------------------------

@pytest.mark.parametrize("kind", list(KINDS))
def test_stored_folds_are_reused_with_identical_forecasts(kind, tmp_path):
    frames = ar_frames(260)
    settings = {"epochs": 2, "units": 4, "seeds": 2} if kind in ("lstm", "gru",
                                                                 "transformer") else {}
    fc = forecaster(kind, **settings)
    wf = WalkForwardConfig(train_bars=200, retrain_every=30, finetune_epochs=1)
    store = ModelStore(tmp_path / "store")
    first = run_walkforward(frames, [fc], wf, tmp_path / "a" / "models", False, store)
    again = run_walkforward(frames, [fc], wf, tmp_path / "b" / "models", False, store)
    assert first.folds_trained == 3 and (again.folds_trained, again.folds_reused) == (0, 3)
    for symbol in frames:
        pd.testing.assert_frame_equal(first.tables()[symbol], again.tables()[symbol])
    for entry in (tmp_path / "store").iterdir():  # forecasts recomputed from the models
        for stored in entry.glob("forecasts-*.npy"):
            stored.unlink()
    third = run_walkforward(frames, [fc], wf, None, False, store)
    for symbol in frames:
        np.testing.assert_allclose(third.tables()[symbol]["pred_close"],
                                   first.tables()[symbol]["pred_close"], rtol=1e-6)
    assert (tmp_path / "b" / "models" / kind / "fold_001" / "settings.json").is_file()
    if first.by_name[kind].members:
        assert len(first.by_name[kind].members) == 2


def test_model_section_is_one_lstm_keyed_by_its_settings_and_the_store_format(
        tmp_path, monkeypatch):
    """A model: config and the same lstm under forecasters: share their stored folds; a
    key is the settings plus the store FORMAT, so a fold stored by an older training
    procedure (an older FORMAT) is trained again, not reused."""
    import engine.models_store as models_store

    frames = ar_frames(260)
    model = ModelConfig(window_len=5, layers=1, units=4, epochs=2, seed=3)
    wf = WalkForwardConfig(train_bars=200, retrain_every=30, finetune_epochs=1)
    plans = plan_folds(260, 200, wf)

    def keys_by_hand():
        keys = []
        for plan in plans:
            warm = plan.index > 0
            shape = {"index": plan.index, "warm_start": warm,
                     "epochs": wf.finetune_epochs if warm else model.epochs}
            data = rows_digest(frames, ["close", "volume"], plan.train_start, plan.train_end)
            keys.append(fold_key(model.model_dump(mode="json"), shape, data,
                                 keys[-1] if warm else None, runtime()))
        return keys

    assert FORMAT >= 2  # 2: the compiled training loop (models.training)
    current = keys_by_hand()
    assert fold_keys(frames, plans, model, wf) == current
    entry = forecaster_from_model(model)
    assert fold_keys(frames, plans, entry, wf) == current
    store = ModelStore(tmp_path / "store")
    with monkeypatch.context() as patch:  # a store filled by the one-fit-per-epoch loop
        patch.setattr(models_store, "FORMAT", 1)
        older = keys_by_hand()
        assert fold_keys(frames, plans, model, wf) == older
        run_walkforward(frames, model, wf, None, False, store)
    assert not set(older) & set(current)
    first = run_walkforward(frames, model, wf, tmp_path / "a" / "models", False, store)
    assert (first.folds_trained, first.folds_reused) == (3, 0)
    named = run_walkforward(frames, [entry], wf, None, False, store)
    assert named.folds_reused == 3
    pd.testing.assert_frame_equal(first.tables()["BTC/USDT"], named.tables()["BTC/USDT"])
    assert (tmp_path / "a" / "models" / "fold_000.keras").is_file()  # the old layout


# --- judged together --------------------------------------------------------------------------

def test_comparison_holds_every_forecaster_and_persistence():
    frames = ar_frames(400)
    fcs = [forecaster("linear"), forecaster("lightgbm", n_estimators=20)]
    wf = run_walkforward(frames, fcs, WF.model_copy(update={"train_bars": 200}),
                         progress=False)
    closes = {s: f["close"] for s, f in frames.items()}
    result = comparison(wf, closes)["BTC/USDT"]
    names = ["linear", "lightgbm", "persistence"]
    assert list(result["diebold_mariano"]) == names
    linear = result["diebold_mariano"]["linear"]["persistence"]
    back = result["diebold_mariano"]["persistence"]["linear"]
    assert linear["statistic"] == -back["statistic"] and linear["p_holm"] >= linear["p_value"]
    assert "persistence" not in result["model_confidence_set"]["included"]
    errors = return_errors(wf, closes, "BTC/USDT")
    assert list(errors.columns) == names and len(errors) == result["n"] == 200
    sentence = verdicts({"forecast_comparison": {"BTC/USDT": result}})[0]
    assert sentence.startswith("BTC/USDT: the best forecaster is ")
    assert "beat" in sentence and "persistence at 5%" in sentence


def test_spa_against_buy_and_hold():
    index = pd.date_range("2021-01-01", periods=400, freq="1D", tz="UTC")
    rng = np.random.default_rng(1)

    class Run:
        def __init__(self, label, returns):
            self.label, self.symbol = label, "BTC/USDT"
            self.equity = pd.Series(10_000 * np.cumprod(1 + returns), index)

    bench = rng.normal(0, 0.01, 400)
    runs = [Run("buy_and_hold", bench), Run("better", bench + 0.004),
            Run("noise", rng.normal(0, 0.01, 400))]
    result = spa(runs)["BTC/USDT"]
    assert result["benchmark"] == "buy_and_hold" and result["best"] == "better"
    assert result["p_value"] < 0.01
    worse = spa([Run("buy_and_hold", bench), Run("worse", bench - 0.002),
                 Run("noise", rng.normal(-0.001, 0.01, 400))])["BTC/USDT"]
    assert worse["p_value"] > 0.5


def test_mcs_and_spa_match_arch_called_directly():
    from arch.bootstrap import MCS, SPA

    from engine.report.statistics import (
        BOOTSTRAP_SEED,
        model_confidence_set,
        superior_predictive_ability,
    )

    rng = np.random.default_rng(2)
    losses = pd.DataFrame({"a": rng.normal(1.0, 0.3, 300) ** 2,
                           "b": rng.normal(1.05, 0.3, 300) ** 2,
                           "c": rng.normal(1.6, 0.3, 300) ** 2})
    mcs = MCS(losses, size=0.1, reps=1000, method="R", bootstrap="stationary",
              seed=BOOTSTRAP_SEED)
    mcs.compute()
    ours = model_confidence_set(losses, 0.1)
    assert set(ours["included"]) == set(mcs.included) and "c" not in ours["included"]
    bench = pd.Series(rng.normal(0, 0.01, 300))
    models = pd.DataFrame({"x": rng.normal(0.001, 0.01, 300), "y": rng.normal(0, 0.01, 300)})
    spa_ = SPA(-bench, -models, reps=1000, bootstrap="stationary", studentize=True,
               seed=BOOTSTRAP_SEED)
    spa_.compute()
    assert superior_predictive_ability(bench, models)["p_value"] == \
        pytest.approx(float(spa_.pvalues["consistent"]))


def test_equally_good_forecasters_all_stay_in_the_set():
    from engine.report.statistics import model_confidence_set

    rng = np.random.default_rng(3)
    losses = pd.DataFrame({n: rng.normal(1, 0.2, 300) ** 2 for n in ("a", "b", "persistence")})
    result = model_confidence_set(losses)
    assert result["included"] == ["a", "b", "persistence"]
    assert min(result["pvalues"].values()) >= 0.1
