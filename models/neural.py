"""Neural forecaster kinds (Keras 3, any backend): ``lstm``, ``gru`` and ``transformer``.

- ``lstm``: the 2018 tutorial's stack (``models.lstm.build_model``): LSTM layers, each
  followed by dropout, then a dense output layer;
- ``gru``: the same stack with GRU layers;
- ``transformer``: the window projected to ``units`` wide, a learned position embedding,
  ``layers`` encoder blocks (multi-head self-attention with ``heads`` heads and a
  feed-forward layer, each with a residual connection, dropout and layer normalisation),
  the last bar's vector through dropout to the output layer.

With the ``direction`` target the output is a sigmoid trained with binary cross-entropy.
A forecaster with ``seeds: N`` holds N members, member j seeded with ``seed + 1000 j``
(fold k of member j uses ``seed + 1000 j + k``); its forecast is their mean. The members
train together as one seed ensemble (``models.ensemble``: one Keras model, no weight
shared, summed loss), in the batch order of member 0's seed, and are saved together in
one ``model.keras``: for ``lstm`` and ``gru`` the members' weights are stacked along a
member axis (one recurrent loop for all), for ``transformer`` the members are branches
side by side. Every member continues from its own previous fold on a warm start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models import ensemble, lstm
from models.kinds import member_seed
from models.lstm import keras


@keras.saving.register_keras_serializable(package="engine")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector per position of the window."""

    def __init__(self, length: int, width: int, **kwargs):
        super().__init__(**kwargs)
        self.length, self.width = length, width
        self.embedding = keras.layers.Embedding(length, width)

    def build(self, input_shape):
        self.embedding.build((self.length,))

    def call(self, inputs):
        positions = keras.ops.arange(self.length)
        return inputs + self.embedding(positions)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "length": self.length, "width": self.width}


def build_network(cfg: Any, n_features: int, n_outputs: int) -> keras.Model:
    """A compiled network of ``cfg``'s kind for (window_len, n_features) inputs."""
    classifier = cfg.resolved_target == "direction"
    if cfg.kind == "lstm" and not classifier:
        return lstm.build_model(cfg, n_features, n_outputs)  # the tutorial's, as it was
    inputs = keras.Input((cfg.window_len, n_features))
    if cfg.kind == "transformer":
        x = _encoder(cfg, inputs)
    else:
        layer = keras.layers.LSTM if cfg.kind == "lstm" else keras.layers.GRU
        x = inputs
        for i in range(cfg.layers):
            x = layer(cfg.units, activation=cfg.activation,
                      return_sequences=i < cfg.layers - 1)(x)
            x = keras.layers.Dropout(cfg.dropout, seed=cfg.seed + i)(x)
    activation = "sigmoid" if classifier else cfg.output_activation
    outputs = keras.layers.Dense(n_outputs, activation=activation)(x)
    model = keras.Model(inputs, outputs, name=f"{cfg.kind}_forecaster")
    loss = "binary_crossentropy" if classifier else lstm.LOSSES[cfg.loss]
    model.compile(optimizer=lstm.optimizer(cfg), loss=loss)
    return model


def _encoder(cfg: Any, inputs: Any) -> Any:
    """Transformer encoder blocks over the window; returns the last bar's vector."""
    x = keras.layers.Dense(cfg.units)(inputs)
    x = PositionEmbedding(cfg.window_len, cfg.units)(x)
    for i in range(cfg.layers):
        attention = keras.layers.MultiHeadAttention(cfg.heads, cfg.units // cfg.heads)(x, x)
        attention = keras.layers.Dropout(cfg.dropout, seed=cfg.seed + 2 * i)(attention)
        x = keras.layers.LayerNormalization()(x + attention)
        hidden = keras.layers.Dense(2 * cfg.units, activation=cfg.activation)(x)
        hidden = keras.layers.Dense(cfg.units)(hidden)
        hidden = keras.layers.Dropout(cfg.dropout, seed=cfg.seed + 2 * i + 1)(hidden)
        x = keras.layers.LayerNormalization()(x + hidden)
    x = _LastStep()(x)
    return keras.layers.Dropout(cfg.dropout, seed=cfg.seed + 2 * cfg.layers)(x)


@keras.saving.register_keras_serializable(package="engine")
class _LastStep(keras.layers.Layer):
    """The last position of a sequence: (batch, steps, width) -> (batch, width)."""

    def call(self, inputs):
        return inputs[:, -1, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


class NeuralModel:
    """One fold of a neural forecaster: one network, or with ``seeds: N`` one seed
    ensemble (``models.ensemble``) whose N members train together."""

    warm_start = True  # a re-fit continues from the previous fold's network

    def __init__(self, cfg: Any, network: keras.Model):
        self.cfg, self.network = cfg, network

    @classmethod
    def build(cls, cfg: Any, n_features: int, n_outputs: int, fold: int) -> NeuralModel:
        """A fresh network (or ensemble) for fold ``fold``, seeded as an uninterrupted run
        seeds it: member j starts from the weights a lone network of seed
        ``seed + 1000 j + fold`` starts from."""
        seeds = fold_seeds(cfg, fold)
        if cfg.seeds == 1:
            lstm.seed_everything(seeds[0])
            return cls(cfg, build_network(cfg, n_features, n_outputs))
        # Each member keeps its own base seed in its settings (its dropout layers' seeds).
        configs = {s: cfg.model_copy(update={"seed": member_seed(cfg.seed, j)})
                   for j, s in enumerate(seeds)}
        return cls(cfg, ensemble.build(
            lambda s: build_network(configs[s], n_features, n_outputs), seeds))

    def fit(self, X: np.ndarray, y: np.ndarray, *, fold: int, epochs: int) -> float:
        """Train for ``epochs``; returns the final loss (the members' mean).

        Every member takes the batches in the order of member 0's fold seed (see
        ``models.ensemble`` for what else differs from training each seed alone)."""
        seeds = fold_seeds(self.cfg, fold)
        if self.cfg.seeds == 1:
            lstm.seed_everything(seeds[0], self.network)
            return lstm.fit(self.network, X, y, epochs, self.cfg.batch_size, seed=seeds[0])[-1]
        lstm.seed_everything(seeds[0])
        ensemble.reseed(self.network, seeds)
        return ensemble.train(self.network, X, y, epochs, self.cfg.batch_size,
                              seed=seeds[0])[-1]

    def predict_members(self, X: np.ndarray) -> np.ndarray:
        """(members, windows, outputs) forecasts."""
        if self.cfg.seeds == 1:
            return lstm.predict(self.network, X)[None]
        return ensemble.predict_members(self.network, X)

    def save(self, directory: Path) -> list[str]:
        """``model.keras`` (the network, every member in it); returns the file names."""
        self.network.save(directory / MODEL_FILE)
        return [MODEL_FILE]

    @classmethod
    def load(cls, cfg: Any, directory: Path) -> NeuralModel:
        """The fold saved by ``save`` in ``directory``."""
        return cls(cfg, lstm.load(directory / MODEL_FILE))


MODEL_FILE = "model.keras"


def fold_seeds(cfg: Any, fold: int) -> list[int]:
    """The seed of each member in fold ``fold``: ``seed + 1000 j + fold``."""
    return [member_seed(cfg.seed, j) + fold for j in range(cfg.seeds)]


