"""Stacked seed ensembles: recurrent members with their weights along a member axis."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import ModelConfig
from models import ensemble, lstm, neural, stacked, training
from models.lstm import keras
from tests.models.backends import last_line
from tests.models.ensembles import assert_reloaded_continues_exactly

SEEDS = [3, 4, 5]


def data(n=70, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.1, (n, 5, 3)).astype("float32"), rng.normal(0, 0.05, (n, 2))


def network_builder(kind, dropout=0.0):
    from engine.config import validate_config

    entry = {"name": "f", "kind": kind, "window_len": 5, "layers": 2, "units": 4,
             "dropout": dropout, "batch_size": 16}
    cfg = validate_config({"forecasters": [entry]}).forecasters[0]
    return lambda seed: neural.build_network(cfg, 3, 2)


def lone(builder, seed, X, y, order_seed, epochs):
    training.seed_everything(seed)
    model = builder(seed)
    training.seed_everything(seed, model)
    training.train(model, X, y, epochs, 16, seed=order_seed)
    return model


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_without_dropout_each_member_follows_its_seed_trained_alone(kind):
    """Stacked: the same initial weights as each seed alone (same forecasts to rounding),
    and after training on the same batches the same forecasts to float32 rounding."""
    X, y = data()
    builder = network_builder(kind)
    model = ensemble.build(builder, SEEDS)
    assert not ensemble._branches(model)  # stacked, not side by side
    before = ensemble.predict_members(model, X)
    for i, seed in enumerate(SEEDS):
        training.seed_everything(seed)
        np.testing.assert_allclose(before[i], lstm.predict(builder(seed), X), atol=1e-6)
    ensemble.train(model, X, y, epochs=3, batch_size=16, seed=SEEDS[0])
    after = ensemble.predict_members(model, X)
    for i, seed in enumerate(SEEDS):
        alone = lone(builder, seed, X, y, SEEDS[0], epochs=3)
        np.testing.assert_allclose(after[i], lstm.predict(alone, X), atol=1e-5)
        assert np.abs(after[i] - before[i]).max() > 1e-3  # training moved it
    assert not np.allclose(after[0], after[1])


def test_with_dropout_members_draw_their_own_masks_and_train_to_their_own_fit():
    X, y = data(200)
    builder = network_builder("lstm", dropout=0.25)
    model = ensemble.build(builder, SEEDS)
    losses = ensemble.train(model, X, y, epochs=30, batch_size=16, seed=SEEDS[0])
    assert losses[-1] < losses[0]
    members = ensemble.predict_members(model, X)
    alone = lone(builder, SEEDS[0], X, y, SEEDS[0], epochs=30)
    # Not the lone masks, so not the lone weights; but a fit of the same quality.
    assert not np.allclose(members[0], lstm.predict(alone, X), atol=1e-5)
    lone_mse = np.mean((lstm.predict(alone, X) - y) ** 2)
    assert np.mean((members[0] - y) ** 2) == pytest.approx(lone_mse, rel=0.2)


def test_reloaded_stacked_ensemble_continues_exactly(tmp_path):
    builder = network_builder("gru", dropout=0.25)
    assert_reloaded_continues_exactly(builder, SEEDS, *data(80), tmp_path)


def test_only_chains_of_recurrent_dropout_and_dense_layers_stack():
    assert stacked.stackable(network_builder("lstm")(0))
    assert stacked.stackable(network_builder("gru")(0))
    assert not stacked.stackable(network_builder("transformer")(0))
    tiny = ModelConfig(window_len=5, layers=1, units=4)
    recurrent_dropout = keras.Sequential([keras.Input((5, 3)),
                                          keras.layers.LSTM(4, recurrent_dropout=0.1),
                                          keras.layers.Dense(2)])
    assert not stacked.stackable(recurrent_dropout)
    assert stacked.stackable(lstm.build_model(tiny, 3, 2))

    def chain(*layers):
        return keras.Sequential([keras.Input((5, 3)), *layers, keras.layers.Dense(2)])

    # Layers whose stacked form would compute something else are never stacked.
    assert stacked.stackable(chain(keras.layers.LSTM(4), keras.layers.Dropout(0.1)))
    assert not stacked.stackable(chain(keras.layers.LSTM(4, return_sequences=True),
                                       keras.layers.SpatialDropout1D(0.1),
                                       keras.layers.LSTM(4)))
    assert not stacked.stackable(chain(keras.layers.Dropout(0.1), keras.layers.LSTM(4)))
    assert not stacked.stackable(chain(keras.layers.LSTM(4, kernel_regularizer="l2")))
    assert not stacked.stackable(chain(keras.layers.GRU(4, reset_after=False)))
    assert not stacked.stackable(chain(keras.layers.LSTM(4, go_backwards=True)))
    with pytest.raises(ValueError, match="chain of LSTM/GRU"):
        stacked.stack([lstm.build_model(tiny, 3, 2), recurrent_dropout])


STACKED_ON_A_BACKEND = """
import pathlib, sys
import numpy as np
from engine.config import validate_config
from models import ensemble, lstm, neural, training
rng = np.random.default_rng(0)
X = rng.normal(0, 0.1, (70, 5, 3)).astype("float32")
y = rng.normal(0, 0.05, (70, 2))

def builder(dropout):
    cfg = validate_config({"forecasters": [{"name": "f", "kind": "lstm", "window_len": 5,
        "layers": 2, "units": 4, "dropout": dropout, "batch_size": 16}]}).forecasters[0]
    return lambda seed: neural.build_network(cfg, 3, 2)

# Without dropout every member follows its seed trained alone.
plain = builder(0.0)
model = ensemble.build(plain, [3, 4])
ensemble.train(model, X, y, 2, 16, seed=3)
members = ensemble.predict_members(model, X)
close = []
for i, seed in enumerate([3, 4]):
    training.seed_everything(seed)
    alone = plain(seed)
    training.seed_everything(seed, alone)
    training.train(alone, X, y, 2, 16, seed=3)
    close.append(bool(np.allclose(members[i], lstm.predict(alone, X), atol=1e-5)))

# With dropout, saved, reloaded and continued equals an uninterrupted run.
first = ensemble.build(builder(0.25), [3, 4])
ensemble.train(first, X[:50], y[:50], 2, 16, seed=1)
other = ensemble.build(builder(0.25), [3, 4])
ensemble.train(other, X[:50], y[:50], 2, 16, seed=1)
reloaded = lstm.load(lstm.save(first, pathlib.Path(sys.argv[1]) / "e.keras", {}))
for m in (other, reloaded):
    ensemble.reseed(m, [4, 5])
    ensemble.train(m, X, y, 2, 16, seed=2)
same = np.array_equal(ensemble.predict_members(other, X), ensemble.predict_members(reloaded, X))
print(all(close), same)
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_stacked_ensemble_on_other_backends(backend, tmp_path):
    """JAX and PyTorch: members follow their seeds alone without dropout, and a reloaded
    stacked ensemble continues exactly."""
    assert last_line(STACKED_ON_A_BACKEND, backend, str(tmp_path)) == "True True"


def test_store_keys_of_seed_ensembles_name_their_form():
    """Stacked folds of several seeds are keyed apart from side-by-side ones (which had no
    marker); one seed and the kinds that are not stacked keep their keys."""
    from engine.config import validate_config
    from engine.fold_data import key_settings
    from models.kinds import ENSEMBLE_FORMAT

    def settings(kind, seeds):
        entry = {"name": "f", "kind": kind, "seeds": seeds}
        return key_settings(validate_config({"forecasters": [entry]}).forecasters[0])

    for kind in ("lstm", "gru"):
        assert settings(kind, 3)["ensemble"] == ENSEMBLE_FORMAT
        assert "ensemble" not in settings(kind, 1)
    for kind in ("transformer", "linear", "lightgbm"):
        assert "ensemble" not in settings(kind, 3)
