"""Build, fit, predict with and save the LSTM forecaster (backend-agnostic Keras 3).

The network follows the 2018 "predict Bitcoin and Ethereum price with RNN-LSTM in Keras"
tutorial: stacked LSTM layers, each followed by dropout, then a dense layer with one
output per forecast symbol and an output activation (tanh in the tutorial). Any Keras 3
backend works: TensorFlow by default, ``KERAS_BACKEND=jax`` or ``torch`` as well; the
backend places work on a GPU when it has one (see ``device_description``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from models import runtime as _runtime
from models.keras_env import keras  # the model modules import it from here

_OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "sgd": "SGD"}
LOSSES = {"mse": "mean_squared_error", "mae": "mean_absolute_error", "huber": "huber"}


def seed_everything(seed: int, model: keras.Model | None = None) -> None:
    """Seed Python, NumPy and the backend, and ``model``'s dropout states (see
    ``models.training.seed_everything``)."""
    from models import training

    training.seed_everything(seed, model)


def build_model(cfg: Any, n_features: int, n_outputs: int) -> keras.Model:
    """A compiled stack of ``cfg.layers`` LSTM layers for (window_len, n_features) inputs.

    ``cfg`` is a ``model:`` section or an lstm forecaster entry (the same settings)."""
    layers: list[Any] = [keras.Input((cfg.window_len, n_features))]
    for i in range(cfg.layers):
        last = i == cfg.layers - 1
        layers.append(keras.layers.LSTM(cfg.units, activation=cfg.activation,
                                        return_sequences=not last))
        # An explicit seed puts every backend's dropout on a Keras SeedGenerator, whose state
        # seed_everything(seed, model) resets (PyTorch's unseeded dropout would use torch's
        # global generator instead, which a reloaded model does not reproduce).
        layers.append(keras.layers.Dropout(cfg.dropout, seed=cfg.seed + i))
    layers.append(keras.layers.Dense(n_outputs, activation=cfg.output_activation))
    model = keras.Sequential(layers, name="lstm_forecaster")
    model.compile(optimizer=optimizer(cfg), loss=LOSSES[cfg.loss])
    return model


def optimizer(cfg: Any) -> keras.optimizers.Optimizer:
    """The configured optimizer with its learning rate."""
    return getattr(keras.optimizers, _OPTIMIZERS[cfg.optimizer])(learning_rate=cfg.learning_rate)


def fit(model: keras.Model, X: np.ndarray, y: np.ndarray, epochs: int, batch_size: int,
        seed: int = 0) -> list[float]:
    """Train on (X, y) for ``epochs``, shuffled anew each epoch from ``seed``; returns each
    epoch's loss. The loop is ``models.training.train`` (see there).

    Raises:
        ModelError: No windows to train on, or the loss became NaN.
    """
    from models import training

    return training.train(model, X, y, epochs, batch_size, seed)


def predict(model: keras.Model, X: np.ndarray) -> np.ndarray:
    """Forecast every window in one batched model call."""
    if len(X) == 0:
        return np.empty((0, model.output_shape[-1]))
    return np.asarray(model.predict_on_batch(X), dtype="float64")


def save(model: keras.Model, path: Path, meta: dict[str, Any]) -> Path:
    """Save the model in the native ``.keras`` format with ``meta`` as JSON beside it.

    Both files are written under temporary names and renamed into place, so a crash
    never leaves a half-written model behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_model = path.with_name(f".{path.stem}.tmp.keras")
    tmp_meta = path.with_name(f".{path.stem}.tmp.json")
    model.save(tmp_model)
    tmp_meta.write_text(json.dumps(meta, indent=2, default=str))
    os.replace(tmp_model, path)
    os.replace(tmp_meta, path.with_suffix(".json"))
    return path


def load(path: Path) -> keras.Model:
    """Load a model saved by ``save``."""
    return keras.saving.load_model(path)


def get_weights(model: keras.Model) -> list[np.ndarray]:
    """The model's weights (not the optimizer's), in layer order."""
    return model.get_weights()


def set_weights(model: keras.Model, weights: list[np.ndarray]) -> None:
    """Put ``weights`` (from ``get_weights`` of a model of the same shape) into ``model``."""
    model.set_weights(weights)


def runtime() -> dict[str, str | None]:
    """The Keras version, its backend and the backend library's version: what a fitted
    model's weights may depend on besides the settings, the data and the seed (see
    ``models.runtime``, which finds them without importing Keras)."""
    return _runtime.runtime()


def device_description() -> str:
    """Which backend and device the model runs on, e.g. ``tensorflow on CPU``."""
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_logical_devices("GPU")
            where = f"GPU ({gpus[0].name})" if gpus else "CPU"
        elif backend == "jax":
            import jax

            device = jax.devices()[0]
            where = f"{device.platform.upper()} ({device.device_kind})"
        elif backend == "torch":
            import torch

            where = f"GPU ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() \
                else "CPU"
        else:
            where = "unknown device"
    except Exception as exc:  # a broken driver should not stop a run; say so instead
        where = f"unknown device ({type(exc).__name__})"
    return f"{backend} on {where}"
