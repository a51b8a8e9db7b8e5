"""Seed ensembles side by side: N members of a network without a stacked form (here a
Flatten layer) trained as one model, each exactly its seed trained alone. Stacked
ensembles (the lstm and gru kinds) are in test_stacked.py."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import ModelConfig
from engine.errors import ModelError
from models import ensemble, lstm, training
from models.lstm import keras
from tests.models.ensembles import assert_reloaded_continues_exactly

TINY = ModelConfig(window_len=5, layers=2, units=4, dropout=0.25, epochs=2, batch_size=16)
SEEDS = [3, 4, 5]


def data(n=70, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.1, (n, 5, 3)).astype("float32"), rng.normal(0, 0.05, (n, 2))


def builder(seed):
    """An LSTM with dropout whose Flatten layer has no stacked form."""
    model = keras.Sequential([keras.Input((5, 3)),
                              keras.layers.LSTM(4, return_sequences=True),
                              keras.layers.Dropout(0.25, seed=seed),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    model.compile(optimizer=lstm.optimizer(TINY), loss="mse")
    return model


def alone(seed, X, y, order_seed, epochs=3):
    training.seed_everything(seed)
    model = builder(seed)
    training.seed_everything(seed, model)
    losses = training.train(model, X, y, epochs, 16, seed=order_seed)
    return model, losses


def test_each_member_equals_its_seed_trained_alone_on_the_same_batches():
    X, y = data()
    model = ensemble.build(builder, SEEDS)
    losses = ensemble.train(model, X, y, epochs=3, batch_size=16, seed=SEEDS[0])
    members = ensemble.predict_members(model, X)
    assert members.shape == (3, 70, 2)
    assert len(ensemble._branches(model)) == 3
    lone_losses = []
    for i, seed in enumerate(SEEDS):
        lone, lone_loss = alone(seed, X, y, order_seed=SEEDS[0])
        lone_losses.append(lone_loss)
        for a, b in zip(lone.get_weights(), ensemble._branches(model)[i].get_weights(),
                        strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(lstm.predict(lone, X), members[i])
    # Summed, not averaged: the reported loss is the members' mean loss.
    np.testing.assert_allclose(losses, np.mean(lone_losses, axis=0), rtol=1e-5)
    assert not np.allclose(members[0], members[1])  # own initialisation and dropout
    np.testing.assert_allclose(ensemble.predict(model, X), members.mean(axis=0))


def test_reloaded_ensemble_continues_exactly_like_the_original(tmp_path):
    assert_reloaded_continues_exactly(builder, SEEDS, *data(80), tmp_path)


def test_seeds_must_be_distinct_and_match_the_members():
    with pytest.raises(ModelError, match="distinct seeds"):
        ensemble.build(builder, [1, 1])
    with pytest.raises(ModelError, match="distinct seeds"):
        ensemble.build(builder, [])
    two_outputs = keras.Model(inputs := keras.Input((5, 3)),
                              [keras.layers.Dense(1)(keras.layers.Flatten()(inputs))] * 2)
    with pytest.raises(ModelError, match="exactly one output"):
        ensemble.build(lambda seed: two_outputs, [1, 2])
    with pytest.raises(ModelError, match="2 members"):
        ensemble.reseed(ensemble.build(builder, [1, 2]), [1, 2, 3])


def test_forecaster_seeds_train_as_one_stacked_ensemble_each_member_its_own_seed(tmp_path):
    """seeds: 3 of the lstm kind is one stacked ensemble: member j starts from the network
    of seed + 1000 j + fold and, without dropout, trains like it alone on member 0's batch
    order (to float32 rounding); saved and reloaded, it continues exactly."""
    from engine.config import validate_config
    from models.neural import NeuralModel, fold_seeds

    raw = {"forecasters": [{"name": "lstm", "kind": "lstm", "window_len": 5, "layers": 1,
                            "units": 4, "dropout": 0.0, "batch_size": 16, "seed": 9,
                            "seeds": 3}]}
    cfg = validate_config(raw).forecasters[0]
    X, y = data()
    three = NeuralModel.build(cfg, 3, 2, fold=2)
    three.fit(X, y, fold=2, epochs=2)
    forecasts = three.predict_members(X)
    assert forecasts.shape == (3, 70, 2)
    seeds = fold_seeds(cfg, 2)
    assert seeds == [11, 1011, 2011]
    for j in range(3):
        member_cfg = cfg.model_copy(update={"seeds": 1, "seed": 9 + 1000 * j})
        alone = NeuralModel.build(member_cfg, 3, 2, fold=2)
        training.seed_everything(seeds[j], alone.network)
        training.train(alone.network, X, y, 2, 16, seed=seeds[0])
        np.testing.assert_allclose(forecasts[j], lstm.predict(alone.network, X), atol=1e-5)
    assert three.save(tmp_path) == ["model.keras"]
    again = NeuralModel.load(cfg, tmp_path)
    for model in (three, again):
        model.fit(X, y, fold=3, epochs=1)
    np.testing.assert_array_equal(three.predict_members(X), again.predict_members(X))
