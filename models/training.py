"""Train any compiled Keras 3 model on (X, y) arrays, many steps per compiled call.

``train`` runs every epoch of a fit in a handful of calls into one compiled function
instead of one Keras ``fit`` per epoch: the batches are drawn in the engine's own seeded
order (``batch_plan``), gathered on the host a chunk of ``steps_per_call`` steps at a
time, and each chunk runs as one loop compiled by the backend: ``jax.jit`` over a
``lax.fori_loop`` on JAX, one ``tf.function`` (XLA where it is faster) on TensorFlow, a
plain Python loop on PyTorch. Every step is the model's own ``train_step``, so its loss,
optimizer, regularisation and dropout behave exactly as under ``fit``.

What ``fit`` did differently, and why the weights differ from an older loop's:

- The short last batch of an epoch is padded to ``batch_size`` rows (copies of real rows
  with sample weight 0; the real rows weighted ``batch_size / rows``), so every step has
  one shape and one compiled function serves every fold. With Keras' default loss
  reduction (``sum_over_batch_size``) its loss is still the mean over its real rows.
  Layers that mix the rows of a batch (``BatchNormalization``) do see the padding.
- On TensorFlow the chunk is compiled with XLA, whose kernels (and random-number
  algorithm for dropout masks) differ from TensorFlow's graph kernels.

Folds stay exactly reproducible from their seed on each backend: the batch order comes
from ``numpy.random.default_rng(seed)`` (never a global state), dropout from the model's
own seed-generator states (``seed_everything``), and the chunking never changes what a
step computes.

Example:
    >>> seed_everything(7)
    >>> model = build(...)                     # any compiled Keras model
    >>> seed_everything(7, model)
    >>> losses = train(model, X, y, epochs=20, batch_size=32, seed=7)
"""

from __future__ import annotations

import json
import os
import re
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import ModelError
from models.keras_env import filtered_stderr, keras

# Host memory for one chunk of gathered batches; the steps per compiled call follow from
# it (at most MAX_STEPS_PER_CALL). Fixed per model shape, so one compilation serves every
# fold, whatever its length.
CHUNK_BYTES = 8 * 2**20
MAX_STEPS_PER_CALL = 256

Arrays = np.ndarray | Sequence[np.ndarray]


@dataclass(frozen=True)
class BatchPlan:
    """The rows every training step uses, epoch after epoch."""

    index: np.ndarray  # (steps, batch_size) rows of X
    weight: np.ndarray  # (steps, batch_size) sample weights; 0 for padding rows
    size: np.ndarray  # (steps,) real rows of each step
    epoch: np.ndarray  # (steps,) the epoch each step belongs to

    def __len__(self) -> int:
        return len(self.index)


def batch_plan(n: int, epochs: int, batch_size: int, seed: int) -> BatchPlan:
    """Each epoch a new permutation of ``n`` rows from ``default_rng(seed)``, cut into
    batches of ``batch_size``; the last, short one padded (see the module docstring).

    The permutations are the ones the older one-``fit``-per-epoch loop drew, so both
    loops visit the rows in the same order.
    """
    rng = np.random.default_rng(seed)
    per_epoch = -(-n // batch_size)
    last = n - (per_epoch - 1) * batch_size  # real rows of the last batch
    weight = np.ones((per_epoch, batch_size), dtype="float32")
    weight[-1, :last] = batch_size / last
    weight[-1, last:] = 0.0
    size = np.full(per_epoch, batch_size)
    size[-1] = last
    index = [np.resize(rng.permutation(n), per_epoch * batch_size).reshape(per_epoch, -1)
             for _ in range(epochs)]
    return BatchPlan(np.concatenate(index).astype("int32"), np.tile(weight, (epochs, 1)),
                     np.tile(size, epochs), np.repeat(np.arange(epochs), per_epoch))


def seed_everything(seed: int, model: keras.Model | None = None) -> None:
    """Seed Python, NumPy and the backend; make TensorFlow's kernels deterministic.

    With ``model``, its layers' random-number states (dropout masks) are reset from
    ``seed`` too. Keras does not save those states in ``.keras`` files, so this is what
    makes "load fold k, fit fold k + 1" give exactly the weights of an uninterrupted run.
    """
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    if model is not None:
        reset_seed_states(model, seed)


def reset_seed_states(model: keras.Model, seed: int) -> None:
    """Set the model's seed-generator states (dropout and the like) from ``seed``."""
    states = [v for v in model.variables if v.path.endswith("seed_generator_state")]
    for i, state in enumerate(states):
        state.assign(np.array([seed * 1_000 + i, 0], dtype=state.dtype))


def train(model: keras.Model, X: np.ndarray, y: Arrays, epochs: int, batch_size: int,
          seed: int = 0) -> list[float]:
    """Train ``model`` on (X, y) for ``epochs``, shuffled anew each epoch.

    Args:
        model: Any compiled Keras 3 model.
        X: Inputs, one row per sample.
        y: Targets: one array, or one per model output (a tuple or list).
        epochs: Passes over the data.
        batch_size: Rows per step.
        seed: Seeds the batch order (``batch_plan``).

    Returns:
        Each epoch's training loss (the mean over its rows, as ``fit`` reports it).

    Raises:
        ModelError: No rows to train on, or the loss became NaN.
    """
    if len(X) == 0:
        raise ModelError("no training windows: the training period is shorter than "
                         "model.window_len + 1 bars")
    if model.optimizer is None:
        raise ModelError(f"model {model.name!r} is not compiled: compile it with an "
                         "optimizer and a loss before training")
    ys = _targets(y, len(X))
    plan = batch_plan(len(X), epochs, batch_size, seed)
    with filtered_stderr():
        _build(model, X, ys, plan)
        step_losses = _steps(model, X, ys, batch_size)(model, X, ys, plan)
    losses = epoch_losses(step_losses, plan, epochs)
    if not np.isfinite(losses[-1]):
        raise ModelError(f"training diverged (loss {losses[-1]}); lower "
                         "model.learning_rate or check the data for extreme values")
    return losses


def epoch_losses(step_losses: np.ndarray, plan: BatchPlan, epochs: int) -> list[float]:
    """Each epoch's loss: its steps' losses weighted by their real rows."""
    total = np.bincount(plan.epoch, weights=step_losses * plan.size, minlength=epochs)
    rows = np.bincount(plan.epoch, weights=plan.size, minlength=epochs)
    return [float(v) for v in total / rows]


def steps_per_call(X: np.ndarray, ys: tuple[np.ndarray, ...], batch_size: int) -> int:
    """Steps per compiled call: as many as fit ``CHUNK_BYTES`` of gathered batches."""
    row = X[0].nbytes + sum(a[0].nbytes for a in ys) + 4
    return int(max(1, min(MAX_STEPS_PER_CALL, CHUNK_BYTES // (row * batch_size))))


def _targets(y: Arrays, n: int) -> tuple[np.ndarray, ...]:
    ys = tuple(y) if isinstance(y, (list, tuple)) else (y,)
    out = tuple(np.asarray(a, dtype="float32") for a in ys)
    if any(len(a) != n for a in out):
        raise ModelError(f"training targets have {[len(a) for a in out]} rows for {n} inputs")
    return out


def _data(x: Any, ys: tuple[Any, ...], w: Any) -> tuple[Any, Any, Any]:
    return x, ys[0] if len(ys) == 1 else ys, w


def _build(model: keras.Model, X: np.ndarray, ys: tuple[np.ndarray, ...],
           plan: BatchPlan) -> None:
    """Create the optimizer's, loss's and metrics' state, as ``fit`` does first (with the
    same Keras method: there is no public one, and ``train_step`` needs that state)."""
    rows = plan.index[0]
    model._symbolic_build(data_batch=_data(X[rows], tuple(a[rows] for a in ys),
                                           plan.weight[0]))
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.reset_metrics()


# --- the compiled loops, one per backend ---------------------------------------------
#
# Compiling a loop costs seconds (XLA), so a compiled loop is kept per model *shape*: a
# new model of the same architecture, compile settings and data shapes (every fold of a
# cold-started walk-forward, a reloaded fold, a second seed) reuses the loop compiled for
# the first. On JAX the loop is stateless, so it simply takes the new model's variables.
# On TensorFlow it updates the variables of the model it was traced with, so the new
# model's state is copied in and back out (and the first model's restored).

Steps = Callable[[keras.Model, np.ndarray, tuple, BatchPlan], np.ndarray]
_SHARED: OrderedDict[str, tuple[keras.Model, Steps]] = OrderedDict()
_SHARED_MAX = 8
_OWN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # models without a signature


def clear_compiled() -> None:
    """Forget every shared compiled loop (the next ``train`` compiles anew, as a new
    process does)."""
    _SHARED.clear()


def _steps(model: keras.Model, X: np.ndarray, ys: tuple[np.ndarray, ...],
           batch_size: int) -> Steps:
    backend = keras.backend.backend()
    if backend not in ("jax", "tensorflow"):
        return _eager_steps()
    k = steps_per_call(X, ys, batch_size)
    shapes = (backend, k, batch_size, X.shape[1:], str(X.dtype), tuple(a.shape[1:] for a in ys))
    signature = _signature(model, shapes)
    if signature is None:  # unknown architecture: one loop per model object
        key = (id(model.optimizer), shapes)
        cached = _OWN.get(model)
        if cached is None or cached[0] != key:
            cached = key, _make_steps(model, k)
            _OWN[model] = cached
        return cached[1]
    if signature not in _SHARED:
        _SHARED[signature] = model, _make_steps(model, k)
        while len(_SHARED) > _SHARED_MAX:
            _SHARED.popitem(last=False)
    _SHARED.move_to_end(signature)
    return _SHARED[signature][1]


def _make_steps(model: keras.Model, k: int) -> Steps:
    if keras.backend.backend() == "jax":
        return _jax_steps(model, k)
    return _tf_steps(model, k)


def _signature(model: keras.Model, shapes: tuple) -> str | None:
    """What the compiled loop depends on: the architecture and compile settings (layer
    names made positional), the variables' shapes and the data shapes; None when the
    model cannot describe itself (then its loop is its own)."""
    try:
        config = {"model": model.get_config(), "compile": model.get_compile_config()}
    except Exception:  # subclassed models without get_config; Keras raises several kinds
        return None
    names = {layer.name for layer in model._flatten_layers(include_self=True, recursive=True)}
    if model.optimizer is not None:
        names.add(model.optimizer.name)
    tokens: dict[str, str] = {}

    def canon(value: Any, key: str | None = None) -> Any:
        if isinstance(value, dict):
            return {k: canon(v, k) for k, v in sorted(value.items())}
        if isinstance(value, (list, tuple)):
            if (len(value) == 3 and isinstance(value[0], str) and value[0] in names
                    and all(isinstance(v, int) for v in value[1:])):  # a node reference
                value = [tokens.setdefault(value[0], f"#{len(tokens)}"), *value[1:]]
            return [canon(v) for v in value]
        if key == "name" and isinstance(value, str) and value in names:
            return tokens.setdefault(value, f"#{len(tokens)}")
        return value

    variables = [(tuple(v.shape), str(v.dtype), v.trainable) for v in model.variables]
    if model.optimizer is not None:
        variables += [(tuple(v.shape), str(v.dtype)) for v in model.optimizer.variables]
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    return json.dumps([kind, canon(config), variables, repr(shapes)], default=repr)


def _state(model: keras.Model) -> tuple[list[Any], list[Any], list[Any]]:
    return ([v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in model.optimizer.variables])


def _assign(model: keras.Model, state: Sequence[Sequence[Any]]) -> None:
    for variables, values in zip((model.trainable_variables, model.non_trainable_variables,
                                  model.optimizer.variables), state, strict=True):
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)


def _chunks(X: np.ndarray, ys: tuple[np.ndarray, ...], plan: BatchPlan, k: int):
    """(x, ys, w, real steps) of ``k`` steps each; the last padded with repeats."""
    for start in range(0, len(plan), k):
        rows = plan.index[start:start + k]
        w = plan.weight[start:start + k]
        real = len(rows)
        if real < k:
            rows = np.concatenate([rows, np.repeat(rows[-1:], k - real, axis=0)])
            w = np.concatenate([w, np.repeat(w[-1:], k - real, axis=0)])
        yield X[rows], tuple(a[rows] for a in ys), w, real


def _jax_steps(owner: keras.Model, k: int) -> Steps:
    import jax
    import jax.numpy as jnp

    def run(state, metrics, x, ys, w, real):
        def body(i, carry):
            state, losses = carry
            data = _data(x[i], tuple(a[i] for a in ys), w[i])
            logs, (tv, ntv, ov, _) = owner.train_step((*state, metrics), data)
            return (list(tv), list(ntv), list(ov)), losses.at[i].set(logs["loss"])

        return jax.lax.fori_loop(0, real, body, (state, jnp.zeros(x.shape[0])))

    compiled = jax.jit(run)

    def steps(model, X, ys, plan):
        # The metrics' reset values go into every step, so each step reports its own loss.
        metrics = [v.value for v in model.metrics_variables]
        state, out = _state(model), []
        for x, yc, w, real in _chunks(X, ys, plan, k):
            state, losses = compiled(state, metrics, x, yc, w, np.int32(real))
            out.append(np.asarray(losses)[:real])
        _assign(model, state)
        return np.concatenate(out)

    return steps


def _tf_steps(owner: keras.Model, k: int) -> Steps:
    import tensorflow as tf

    jit = all(layer.supports_jit for layer in owner._flatten_layers())
    if jit:
        _tf_xla_flags()

    # The loop is written out (no autograph), so it does not depend on reading this file.
    @tf.function(jit_compile=jit, reduce_retracing=True, autograph=False)
    def run(x, ys, w, real):
        def body(i, losses):
            owner.reset_metrics()
            logs = owner.train_step(_data(x[i], tuple(a[i] for a in ys), w[i]))
            return i + 1, tf.tensor_scatter_nd_update(losses, [[i]], [logs["loss"]])

        # The trip count is a loop condition, not a tf.range length, which XLA would
        # take for a constant (a compilation per count).
        return tf.while_loop(lambda i, _: i < real, body, (tf.constant(0), tf.zeros([k])))[1]

    def steps(model, X, ys, plan):
        borrowed = model is not owner
        if borrowed:
            saved = [[tf.identity(v) for v in part] for part in _state(owner)]
            _assign(owner, _state(model))
        out = [run(x, yc, w, tf.constant(real)).numpy()[:real]
               for x, yc, w, real in _chunks(X, ys, plan, k)]
        owner.reset_metrics()
        if borrowed:
            _assign(model, _state(owner))
            _assign(owner, saved)
        return np.concatenate(out)

    return steps


def _tf_xla_flags() -> None:
    """XLA's newer CPU fusion emitters make this loop about 3x slower than the older ones
    (measured with TensorFlow 2.21 on x86-64): use the older ones unless told otherwise.
    Only where the flag is known: XLA aborts the process on an unknown flag."""
    import tensorflow as tf

    flags = os.environ.get("XLA_FLAGS", "")
    version = tuple(int(p) for p in re.findall(r"\d+", tf.__version__)[:2])
    if version == (2, 21) and "xla_cpu_use_fusion_emitters" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_use_fusion_emitters=false".strip()


def _eager_steps() -> Steps:
    """PyTorch: a Python loop over the model's own ``train_step``."""
    from keras import ops

    def steps(model, X, ys, plan):
        out = np.zeros(len(plan))
        for i in range(len(plan)):
            rows = plan.index[i]
            model.reset_metrics()
            logs = model.train_step(_data(ops.convert_to_tensor(X[rows]),
                                          tuple(ops.convert_to_tensor(a[rows]) for a in ys),
                                          ops.convert_to_tensor(plan.weight[i])))
            out[i] = float(ops.convert_to_numpy(logs["loss"]))
        model.reset_metrics()
        return out

    return steps
