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
(fold k of member j uses ``seed + 1000 j + k``); its forecast is their mean. Every member
continues from its own previous fold on a warm start.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models import lstm
from models.lstm import keras

MEMBER_STRIDE = 1000  # member j's seed is seed + 1000 j: far from every fold offset


def member_seed(seed: int, member: int) -> int:
    """The base seed of member ``member`` (member 0 uses the forecaster's own seed)."""
    return seed + MEMBER_STRIDE * member


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
    """One fold of a neural forecaster: its members (one network per seed)."""

    warm_start = True  # a re-fit continues from the previous fold's networks

    def __init__(self, cfg: Any, members: Sequence[keras.Model]):
        self.cfg, self.members = cfg, list(members)

    @classmethod
    def build(cls, cfg: Any, n_features: int, n_outputs: int, fold: int) -> NeuralModel:
        """Fresh members for fold ``fold``, each seeded as an uninterrupted run seeds it."""
        members = []
        for j in range(cfg.seeds):
            seed = member_seed(cfg.seed, j)
            mine = cfg.model_copy(update={"seed": seed})
            lstm.seed_everything(seed + fold)
            members.append(build_network(mine, n_features, n_outputs))
        return cls(cfg, members)

    def fit(self, X: np.ndarray, y: np.ndarray, *, fold: int, epochs: int) -> float:
        """Train every member for ``epochs``; returns the members' mean final loss."""
        losses = []
        for j, member in enumerate(self.members):
            seed = member_seed(self.cfg.seed, j) + fold
            lstm.seed_everything(seed, member)
            losses.append(lstm.fit(member, X, y, epochs, self.cfg.batch_size, seed=seed)[-1])
        return float(np.mean(losses))

    def predict_members(self, X: np.ndarray) -> np.ndarray:
        """(members, windows, outputs) forecasts."""
        return np.stack([lstm.predict(m, X) for m in self.members])

    def save(self, directory: Path) -> list[str]:
        """``model.keras`` (member 0) and ``member_J.keras``; returns the file names."""
        names = [member_file(j) for j in range(len(self.members))]
        for name, member in zip(names, self.members, strict=True):
            member.save(directory / name)
        return names

    @classmethod
    def load(cls, cfg: Any, directory: Path) -> NeuralModel:
        """The fold saved by ``save`` in ``directory``."""
        return cls(cfg, [lstm.load(directory / member_file(j)) for j in range(cfg.seeds)])


def member_file(member: int) -> str:
    """The file of member ``member`` in a saved fold."""
    return "model.keras" if member == 0 else f"member_{member}.keras"
