"""The Keras model: architecture, determinism, batched predict, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import ModelConfig
from engine.errors import ModelError
from models import lstm

TINY = ModelConfig(window_len=5, layers=2, units=4, dropout=0.25, epochs=2, batch_size=16)


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.1, (n, 5, 3)).astype("float32"), rng.normal(0, 0.05, (n, 2))


def test_architecture_follows_the_tutorial():
    cfg = ModelConfig(window_len=7, layers=3, units=8, dropout=0.25)
    model = lstm.build_model(cfg, n_features=4, n_outputs=2)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["LSTM", "Dropout", "LSTM", "Dropout", "LSTM", "Dropout", "Dense"]
    assert model.input_shape == (None, 7, 4) and model.output_shape == (None, 2)
    assert model.layers[-1].activation.__name__ == "tanh"
    assert all(layer.rate == 0.25 for layer in model.layers if type(layer).__name__ == "Dropout")


def test_same_seed_same_weights_and_forecasts():
    X, y = data()
    outs = []
    for _ in range(2):
        lstm.seed_everything(7)
        model = lstm.build_model(TINY, 3, 2)
        lstm.fit(model, X, y, epochs=2, batch_size=16)
        outs.append(lstm.predict(model, X))
    np.testing.assert_array_equal(outs[0], outs[1])
    lstm.seed_everything(8)
    other = lstm.build_model(TINY, 3, 2)
    lstm.fit(other, X, y, epochs=2, batch_size=16)
    assert not np.allclose(outs[0], lstm.predict(other, X))


def test_batched_predict_equals_one_call_per_window():
    X, y = data(40)
    lstm.seed_everything(1)
    model = lstm.build_model(TINY, 3, 2)
    lstm.fit(model, X, y, epochs=1, batch_size=16)
    batched = lstm.predict(model, X)
    single = np.vstack([lstm.predict(model, X[i:i + 1]) for i in range(len(X))])
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-6)


def test_save_and_load_round_trip(tmp_path):
    X, y = data()
    lstm.seed_everything(3)
    model = lstm.build_model(TINY, 3, 2)
    lstm.fit(model, X, y, epochs=1, batch_size=16)
    path = lstm.save(model, tmp_path / "fold_000.keras", {"fold": 0})
    assert path.with_suffix(".json").read_text().strip().startswith("{")
    np.testing.assert_allclose(lstm.predict(lstm.load(path), X), lstm.predict(model, X),
                               rtol=1e-6)


def test_no_training_windows_is_a_clear_error():
    model = lstm.build_model(TINY, 3, 2)
    with pytest.raises(ModelError, match="no training windows"):
        lstm.fit(model, np.empty((0, 5, 3), "float32"), np.empty((0, 2)), 1, 16)


def test_device_is_described():
    assert lstm.device_description().startswith(("tensorflow on", "jax on", "torch on"))


def test_reloaded_model_continues_exactly_like_the_original(tmp_path):
    """What lets a paper trader load fold k and fit fold k + 1 like the backtest did."""
    X, y = data(80)
    lstm.seed_everything(1)
    original = lstm.build_model(TINY, 3, 2)
    lstm.fit(original, X[:50], y[:50], epochs=2, batch_size=16, seed=1)
    reloaded = lstm.load(lstm.save(original, tmp_path / "fold.keras", {}))
    for model in (original, reloaded):
        lstm.seed_everything(2, model)
        lstm.fit(model, X, y, epochs=2, batch_size=16, seed=2)
    np.testing.assert_array_equal(lstm.predict(original, X), lstm.predict(reloaded, X))
