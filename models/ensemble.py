"""Seed ensembles: N seeds of one forecaster trained together as one Keras model.

``build(builder, seeds)`` calls ``builder(seed)`` once per seed (each member starts from
the initial weights a lone ``builder(seed)`` gets after ``training.seed_everything(seed)``)
and joins the members into one model with one output per member and no weight shared:

- **stacked** (the ``lstm`` and ``gru`` kinds: a chain of LSTM/GRU, Dropout and Dense
  layers): every weight gets a leading member axis (``models.stacked``), so one
  recurrent loop with batched matrix products steps every member at once;
- **side by side** (any other Keras network, the ``transformer`` kind among them): the
  member networks are branches of one model, which the backend runs one after another.

It is compiled with the first member's optimizer settings and one copy of its loss per
output, which Keras adds up: the total loss is the sum of the members' losses, so each
member's gradients are exactly those it would get alone (a mean over the outputs would
scale them by 1/N, and Adam is not exactly scale-invariant). The optimizer's updates are
per variable (per element for a stacked weight), so each member follows its own path.
``training.train`` trains it like any model, in one compiled loop.

What couples the members, so that a member trained in an ensemble differs from the same
seed trained alone:

- the batch order: all members see the batches of the one ``seed`` given to ``train``;
- the dropout masks of a stacked ensemble: one draw covers every member (each still gets
  its own independent mask), seeded from the first seed; side by side, each member keeps
  the dropout states its seed gives it alone;
- rounding: a batched product may round differently in the last bits from a lone one.
  Without dropout a stacked member follows its seed trained alone on the same batches to
  within float32 rounding; side by side on TensorFlow's CPU kernels (XLA), a member is
  its seed alone bit for bit (``tests/models/test_ensemble.py``);
- optimizers that look at all gradients at once (``global_clipnorm``, loss scaling).

``models.neural.NeuralModel`` trains a forecaster's ``seeds: N`` (N > 1) this way, in
the batch order of member 0's fold seed.

Example:
    >>> model = build(lambda seed: lstm.build_model(cfg, n_features, n_outputs), [1, 2, 3])
    >>> losses = train(model, X, y, epochs=20, batch_size=32, seed=1)
    >>> forecast = predict(model, X)  # the members' mean; predict_members for each
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from engine.errors import ModelError
from models import stacked, training
from models.lstm import keras

Builder = Callable[[int], "keras.Model"]


def build(builder: Builder, seeds: Sequence[int]) -> keras.Model:
    """One compiled model with a member ``builder(seed)`` for each of ``seeds``.

    Args:
        builder: Returns one compiled member model with one output for a seed (any
            Keras network).
        seeds: One seed per member; at least one, no repeats.

    Raises:
        ModelError: No seeds, a seed twice, or a member with several outputs.
    """
    if not seeds or len(set(seeds)) != len(seeds):
        raise ModelError(f"an ensemble needs distinct seeds, got {list(seeds)}")
    networks = []
    for seed in seeds:
        training.seed_everything(seed)  # the initial weights of a lone builder(seed)
        networks.append(builder(seed))
    first = networks[0]
    if all(stacked.stackable(n) for n in networks):
        model = stacked.stack(networks)
    else:
        built = []
        for i, (seed, member) in enumerate(zip(seeds, networks, strict=True)):
            training.reset_seed_states(member, seed)
            built.append(_uncompiled(member, f"member_{i}"))
        inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype) for t in first.inputs]
        feed = inputs[0] if len(inputs) == 1 else inputs
        model = keras.Model(inputs, [member(feed) for member in built], name="seed_ensemble")
    if len(model.outputs) != len(networks):  # size() counts the outputs
        raise ModelError("every member of a seed ensemble must have exactly one output")
    optimizer = type(first.optimizer).from_config(first.optimizer.get_config())
    model.compile(optimizer=optimizer, loss=[first.loss] * len(networks))
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


def size(model: keras.Model) -> int:
    """The number of members of an ensemble (``build`` gives each one output)."""
    return len(model.outputs)


def _branches(model: keras.Model) -> list[keras.Model]:
    """The member networks of a side-by-side ensemble, in seed order (none when stacked)."""
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def reseed(model: keras.Model, seeds: Sequence[int]) -> None:
    """Reset the dropout states from the seeds: each side-by-side member's from its own
    seed, as ``training.seed_everything(seed, member)`` would for the member alone; a
    stacked ensemble's (one mask for every member) from the first seed."""
    if size(model) != len(seeds):
        raise ModelError(f"the ensemble has {size(model)} members, got {len(seeds)} seeds")
    branches = _branches(model)
    if not branches:  # stacked
        training.reset_seed_states(model, seeds[0])
        return
    for member, seed in zip(branches, seeds, strict=True):
        training.reset_seed_states(member, seed)


def train(model: keras.Model, X: np.ndarray, y: np.ndarray, epochs: int, batch_size: int,
          seed: int = 0) -> list[float]:
    """Train every member on (X, y) in the batch order of ``seed``; returns each
    epoch's loss averaged over the members."""
    n = size(model)
    return [loss / n for loss in training.train(model, X, [y] * n, epochs, batch_size, seed)]


def predict_members(model: keras.Model, X: np.ndarray) -> np.ndarray:
    """Every member's outputs for X: (members, rows, outputs)."""
    n = size(model)
    if len(X) == 0:
        return np.empty((n, 0, model.output_shape[0][-1]))
    outputs = model.predict_on_batch(X)
    return np.stack([np.asarray(o, dtype="float64") for o in outputs])


def predict(model: keras.Model, X: np.ndarray) -> np.ndarray:
    """The ensemble forecast: the members' mean."""
    return predict_members(model, X).mean(axis=0)
