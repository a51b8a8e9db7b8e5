"""Seed ensembles: N seeds of one forecaster trained together as one Keras model.

``build(builder, seeds)`` calls ``builder(seed)`` once per seed (each member gets the
initial weights a lone ``builder(seed)`` gets after ``training.seed_everything(seed)``
and its own dropout states) and joins the members side by side: one input, one output
per member, no weight shared. It is compiled with the first member's optimizer settings
and one copy of its loss per output, which Keras adds up: the total loss is the sum of
the members' losses, so each member's gradients are exactly those it would get alone
(a mean over the outputs would scale them by 1/N, and Adam is not exactly
scale-invariant). The optimizer's updates are per variable, so each member follows the
path it would follow alone on the same batches. ``training.train`` trains it like any
model, so N seeds cost one compiled loop instead of N.

What still couples the members, so that a member trained in an ensemble can differ from
the same seed trained alone:

- the batch order: all members see the batches of the one ``seed`` given to ``train``
  (a lone model is seeded with its own seed unless it is given the same order seed);
- optimizers that look at all gradients at once (``global_clipnorm``, loss scaling);
- the backend's compiler may evaluate the members' operations in a different order or
  merge them, which can change the last bits of the floating-point results. On
  TensorFlow's CPU kernels (XLA) each member is bit for bit its seed trained alone on
  the same batches (``tests/models/test_ensemble.py``); JAX and PyTorch are not pinned
  by a test.

``models.neural.NeuralModel`` trains a forecaster's ``seeds: N`` this way, in the batch
order of member 0's fold seed: member 0 is exactly the ``seeds: 1`` forecaster.

Example:
    >>> model = build(lambda seed: lstm.build_model(cfg, n_features, n_outputs), [1, 2, 3])
    >>> losses = train(model, X, y, epochs=20, batch_size=32, seed=1)
    >>> forecast = predict(model, X)  # the members' mean; predict_members for each
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from engine.errors import ModelError
from models import training
from models.lstm import keras

Builder = Callable[[int], "keras.Model"]


def build(builder: Builder, seeds: Sequence[int]) -> keras.Model:
    """One compiled model with a member ``builder(seed)`` for each of ``seeds``.

    Args:
        builder: Returns one compiled member model for a seed (any Keras kind).
        seeds: One seed per member; at least one, no repeats.

    Raises:
        ModelError: No seeds, or a seed twice.
    """
    if not seeds or len(set(seeds)) != len(seeds):
        raise ModelError(f"an ensemble needs distinct seeds, got {list(seeds)}")
    built, first = [], None
    for i, seed in enumerate(seeds):
        training.seed_everything(seed)  # the initial weights of a lone builder(seed)
        member = builder(seed)
        training.reset_seed_states(member, seed)
        first = member if first is None else first
        built.append(_uncompiled(member, f"member_{i}"))
    inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype) for t in first.inputs]
    feed = inputs[0] if len(inputs) == 1 else inputs
    model = keras.Model(inputs, [member(feed) for member in built], name="seed_ensemble")
    optimizer = type(first.optimizer).from_config(first.optimizer.get_config())
    model.compile(optimizer=optimizer, loss=[first.loss] * len(built))
    return model


def _uncompiled(member: keras.Model, name: str) -> keras.Model:
    """The member's layers as a plain functional model named ``name``: the member's own
    optimizer would otherwise be saved (unused) with the ensemble."""
    try:
        inputs, outputs = member.inputs, member.outputs
    except (AttributeError, ValueError):  # a subclassed member without a graph
        member.name = name
        return member
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs,
                       outputs[0] if len(outputs) == 1 else outputs, name=name)


def members(model: keras.Model) -> list[keras.Model]:
    """The member models of an ensemble, in seed order."""
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def reseed(model: keras.Model, seeds: Sequence[int]) -> None:
    """Reset each member's dropout states from its own seed, as
    ``training.seed_everything(seed, member)`` would for the member alone."""
    parts = members(model)
    if len(parts) != len(seeds):
        raise ModelError(f"the ensemble has {len(parts)} members, got {len(seeds)} seeds")
    for member, seed in zip(parts, seeds, strict=True):
        training.reset_seed_states(member, seed)


def train(model: keras.Model, X: np.ndarray, y: np.ndarray, epochs: int, batch_size: int,
          seed: int = 0) -> list[float]:
    """Train every member on (X, y) in the batch order of ``seed``; returns each
    epoch's loss averaged over the members."""
    n = len(members(model))
    return [loss / n for loss in training.train(model, X, [y] * n, epochs, batch_size, seed)]


def predict_members(model: keras.Model, X: np.ndarray) -> np.ndarray:
    """Every member's outputs for X: (members, rows, outputs)."""
    n = len(members(model))
    if len(X) == 0:
        return np.empty((n, 0, model.output_shape[0][-1]))
    outputs = model.predict_on_batch(X)
    return np.stack([np.asarray(o, dtype="float64") for o in outputs])


def predict(model: keras.Model, X: np.ndarray) -> np.ndarray:
    """The ensemble forecast: the members' mean."""
    return predict_members(model, X).mean(axis=0)
