"""The compiled training loop: batch order, the padded last batch, losses, shared loops."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import ModelConfig
from engine.errors import ModelError
from models import lstm, training
from models.lstm import keras
from tests.models.backends import last_line

TINY = ModelConfig(window_len=5, layers=2, units=4, dropout=0.25, epochs=2, batch_size=16)


def data(n=70, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.1, (n, 5, 3)).astype("float32"), rng.normal(0, 0.05, (n, 2))


def dense_model(learning_rate=0.1, seed=0):
    """A model without randomness in training, so steps can be compared one by one."""
    training.seed_everything(seed)
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    return model


def test_batch_plan_visits_every_row_once_per_epoch_in_the_seeded_order():
    plan = training.batch_plan(70, epochs=3, batch_size=16, seed=5)
    rng = np.random.default_rng(5)
    assert plan.index.shape == (15, 16) and list(plan.size) == [16, 16, 16, 16, 6] * 3
    for epoch in range(3):
        rows = plan.index[plan.epoch == epoch].ravel()[:70]
        np.testing.assert_array_equal(rows, rng.permutation(70))  # the older loop's order
        last = plan.weight[plan.epoch == epoch][-1]
        assert np.all(last[:6] == 16 / 6) and np.all(last[6:] == 0)
        assert np.all(plan.weight[plan.epoch == epoch][:-1] == 1)


def test_short_last_batch_trains_like_the_unpadded_batch():
    X, y = data(40)
    padded, plain = dense_model(), dense_model()
    training.train(padded, X, y, epochs=1, batch_size=16, seed=3)
    plan = training.batch_plan(40, 1, 16, seed=3)
    for rows, size in zip(plan.index, plan.size, strict=True):
        plain.train_on_batch(X[rows[:size]], y[rows[:size]].astype("float32"))
    for a, b in zip(padded.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_epoch_loss_is_the_mean_over_its_rows():
    X, y = data(40)
    model = dense_model(learning_rate=0.0)  # weights never move: every epoch's loss is equal
    losses = training.train(model, X, y, epochs=2, batch_size=16, seed=1)
    expected = float(np.mean((model.predict_on_batch(X) - y) ** 2))
    np.testing.assert_allclose(losses, [expected, expected], rtol=1e-5)


def test_same_seed_same_model_other_order_seed_other_model():
    X, y = data()
    outs = []
    for order in (7, 7, 8):
        training.seed_everything(7)
        model = lstm.build_model(TINY, 3, 2)
        training.seed_everything(7, model)
        training.train(model, X, y, epochs=2, batch_size=16, seed=order)
        outs.append(lstm.predict(model, X))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.allclose(outs[0], outs[2])


def test_a_model_trained_through_another_models_loop_is_the_same(monkeypatch):
    """Models of one shape share a compiled loop; neither model's training leaks into
    the other, and the result equals a loop compiled for the model alone."""
    X, y = data()

    def fresh(seed):
        training.seed_everything(seed)
        model = lstm.build_model(TINY, 3, 2)
        training.seed_everything(seed, model)
        return model

    first = fresh(1)
    training.train(first, X, y, epochs=1, batch_size=16, seed=1)
    before = first.get_weights()
    second = fresh(2)
    training.train(second, X, y, epochs=2, batch_size=16, seed=2)
    for a, b in zip(before, first.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(training, "_SHARED", type(training._SHARED)())
    alone = fresh(2)
    training.train(alone, X, y, epochs=2, batch_size=16, seed=2)
    np.testing.assert_array_equal(lstm.predict(second, X), lstm.predict(alone, X))


def test_several_outputs_take_one_target_each():
    X, y = data(40)
    inputs = keras.Input((5, 3))
    flat = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, [keras.layers.Dense(2)(flat), keras.layers.Dense(1)(flat)])
    model.compile(optimizer="sgd", loss=["mse", "mse"])
    losses = training.train(model, X, (y, y[:, :1]), epochs=2, batch_size=16, seed=0)
    assert len(losses) == 2 and all(np.isfinite(losses))
    with pytest.raises(ModelError, match="rows"):
        training.train(model, X, (y, y[:10, :1]), epochs=1, batch_size=16)


def test_no_rows_and_divergence_are_clear_errors():
    model = dense_model()
    with pytest.raises(ModelError, match="no training windows"):
        training.train(model, np.empty((0, 5, 3), "float32"), np.empty((0, 2)), 1, 16)
    X, y = data(40)
    y[3] = np.nan
    with pytest.raises(ModelError, match="training diverged"):
        training.train(model, X, y, 1, 16)


RELOAD_AND_CONTINUE = """
import pathlib, sys
import numpy as np
from engine.config import ModelConfig
from models import lstm, training
tiny = ModelConfig(window_len=5, layers=2, units=4, dropout=0.25, epochs=2, batch_size=16)
rng = np.random.default_rng(0)
X = rng.normal(0, 0.1, (70, 5, 3)).astype("float32")
y = rng.normal(0, 0.05, (70, 2))

def fold(model, seed, rows):
    training.seed_everything(seed, model)
    training.train(model, X[:rows], y[:rows], 2, 16, seed=seed)

def fresh():
    training.seed_everything(1)
    return lstm.build_model(tiny, 3, 2)

uninterrupted, first = fresh(), fresh()
fold(uninterrupted, 1, 50)
fold(first, 1, 50)
reloaded = lstm.load(lstm.save(first, pathlib.Path(sys.argv[1]) / "fold.keras", {}))
for model in (uninterrupted, reloaded):
    fold(model, 2, 70)
print(np.array_equal(lstm.predict(uninterrupted, X), lstm.predict(reloaded, X)))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_backends_continue_a_reloaded_fold_exactly(backend, tmp_path):
    """The loop on JAX (jit + fori_loop) and PyTorch (eager steps): a fold saved, reloaded
    and continued equals an uninterrupted run, bit for bit."""
    assert last_line(RELOAD_AND_CONTINUE, backend, str(tmp_path)) == "True"
