"""Stacked members: N networks of one recurrent shape with their weights along a member axis.

``stack(networks)`` turns N compiled networks of the same chain of ``LSTM``, ``GRU``,
``Dropout`` and ``Dense`` layers (the ``lstm`` and ``gru`` kinds) into one model whose
every weight has a leading member axis: member j's slice holds network j's weights. Each
layer then does for all members what the network's layer does for one:

- the input projection of the whole window is one product for every member and time step
  (``einsum`` over the member axis);
- one recurrent loop over the window (Keras' ``RNN`` layer over a cell that steps every
  member at once) whose recurrent product is a batched matrix product over the member
  axis;
- the output layer is one batched product, split into one output per member.

So N members cost the operations of one network, each N times wider, instead of N
networks one after another. Where a step costs its number of operations (a GPU on small
networks) N members should cost little more than one, though a lone LSTM on a GPU runs as
one fused cuDNN kernel that this loop gives up (not yet measured on a GPU); where it
costs its arithmetic (a CPU: BENCHMARKS.md has the figures) N members still cost about N
times one step.

The arithmetic is each network's own (Keras' LSTM cell with ``implementation=2``, the GRU
cell with ``reset_after``): no weight is shared and the loss is the sum of the members'
losses, so member j's gradients are its own. What differs from network j trained alone
on the same batches:

- the dropout masks: one ``Dropout`` draws the mask of every member at once, so each
  member gets its own independent mask, but not the mask network j would draw alone;
- the backend evaluates a batched product, whose rounding can differ in the last bits
  from a lone product. Without dropout, members follow their lone networks to within
  float32 rounding (``tests/models/test_stacked.py``).

A network with any other layer (the transformer kind, a custom Keras model) has no
stacked form; ``models.ensemble`` joins such members side by side instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.lstm import keras

ops = keras.ops
_GATES = {"lstm": 4, "gru": 3}


def _activation_name(fn: Any) -> str:
    return keras.activations.serialize(fn) if not isinstance(fn, str) else fn


@keras.saving.register_keras_serializable(package="engine")
class StackedRecurrent(keras.layers.Layer):
    """``members`` LSTM or GRU layers side by side.

    Input: (batch, steps, features) shared by every member (the first layer), or (batch,
    steps, members, features). Output: (batch, members, units), or with
    ``return_sequences`` (batch, steps, members, units). The input projection of every
    step is one product before the loop; the loop is Keras' own ``RNN`` layer (a compiled
    while loop on TensorFlow, ``lax.scan`` on JAX) over a cell that steps every member.
    """

    def __init__(self, members: int, units: int, cell: str = "lstm",
                 activation: str = "tanh", recurrent_activation: str = "sigmoid",
                 return_sequences: bool = False, **kwargs):
        super().__init__(**kwargs)
        if cell not in _GATES:
            raise ValueError(f"cell must be lstm or gru, got {cell!r}")
        self.members, self.units = members, units
        self.return_sequences = return_sequences
        self.cell = _StackedCell(members, units, cell, activation, recurrent_activation)
        self.rnn = keras.layers.RNN(self.cell, return_sequences=return_sequences)

    def build(self, input_shape):
        width = _GATES[self.cell.kind] * self.units
        self.kernel = self.add_weight(shape=(self.members, input_shape[-1], width),
                                      name="kernel")
        self.rnn.build((input_shape[0], input_shape[1], self.members * width))

    def call(self, inputs, training=False):
        if len(inputs.shape) == 3:  # one input for every member
            projected = ops.einsum("btf,mfg->btmg", inputs, self.kernel)
        else:
            projected = ops.einsum("btmf,mfg->btmg", inputs, self.kernel)
        shape = ops.shape(projected)
        flat = ops.reshape(projected, (shape[0], shape[1], -1))
        out = self.rnn(flat, training=training)
        if self.return_sequences:
            return ops.reshape(out, (shape[0], shape[1], self.members, self.units))
        return ops.reshape(out, (shape[0], self.members, self.units))

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (input_shape[0], input_shape[1], self.members, self.units)
        return (input_shape[0], self.members, self.units)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "members": self.members, "units": self.units,
                "cell": self.cell.kind, "activation": self.cell.activation_name,
                "recurrent_activation": self.cell.recurrent_activation_name,
                "return_sequences": self.return_sequences}

    def assign(self, weights: list[np.ndarray]) -> None:
        """Set (kernel, recurrent_kernel, bias), each with its member axis first."""
        kernel, recurrent_kernel, bias = weights
        self.kernel.assign(kernel)
        self.cell.recurrent_kernel.assign(recurrent_kernel)
        self.cell.bias.assign(bias)


@keras.saving.register_keras_serializable(package="engine")
class _StackedCell(keras.layers.Layer):
    """One time step of every member: the states are (batch, members x units), the input
    the step's projected input (batch, members x gates x units)."""

    def __init__(self, members: int, units: int, cell: str, activation: str,
                 recurrent_activation: str, **kwargs):
        super().__init__(**kwargs)
        self.members, self.units, self.kind = members, units, cell
        self.activation_name = _activation_name(activation)
        self.recurrent_activation_name = _activation_name(recurrent_activation)
        self.activation = keras.activations.get(self.activation_name)
        self.recurrent_activation = keras.activations.get(self.recurrent_activation_name)
        self.state_size = [members * units] * (2 if cell == "lstm" else 1)
        self.output_size = members * units

    def build(self, input_shape):
        width = _GATES[self.kind] * self.units
        self.recurrent_kernel = self.add_weight(shape=(self.members, self.units, width),
                                                name="recurrent_kernel")
        bias = (self.members, width) if self.kind == "lstm" else (self.members, 2, width)
        self.bias = self.add_weight(shape=bias, name="bias", initializer="zeros")

    def call(self, inputs, states, training=False):
        m, u = self.members, self.units
        x = ops.reshape(inputs, (-1, m, _GATES[self.kind] * u))
        h = ops.reshape(states[0], (-1, m, u))
        recurrent = ops.einsum("bmu,mug->bmg", h, self.recurrent_kernel)
        if self.kind == "lstm":  # Keras' LSTMCell (implementation 2), per member
            c = ops.reshape(states[1], (-1, m, u))
            z0, z1, z2, z3 = ops.split(x + recurrent + self.bias, 4, axis=-1)
            i, f = self.recurrent_activation(z0), self.recurrent_activation(z1)
            c = f * c + i * self.activation(z2)
            h = self.recurrent_activation(z3) * self.activation(c)
            flat = ops.reshape(h, (-1, m * u))
            return flat, [flat, ops.reshape(c, (-1, m * u))]
        # Keras' GRUCell with reset_after (implementation 2), per member
        x_z, x_r, x_h = ops.split(x + self.bias[:, 0], 3, axis=-1)
        r_z, r_r, r_h = ops.split(recurrent + self.bias[:, 1], 3, axis=-1)
        z = self.recurrent_activation(x_z + r_z)
        r = self.recurrent_activation(x_r + r_r)
        hh = self.activation(x_h + r * r_h)
        flat = ops.reshape(z * h + (1 - z) * hh, (-1, m * u))
        return flat, [flat]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "members": self.members, "units": self.units,
                "cell": self.kind, "activation": self.activation_name,
                "recurrent_activation": self.recurrent_activation_name}


@keras.saving.register_keras_serializable(package="engine")
class StackedDense(keras.layers.Layer):
    """``members`` dense layers side by side: (batch, members, features) -> one output
    (batch, units) per member."""

    def __init__(self, members: int, units: int, activation: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.members, self.units = members, units
        self.activation_name = _activation_name(activation) if activation else "linear"
        self.activation = keras.activations.get(self.activation_name)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(self.members, input_shape[-1], self.units),
                                      name="kernel")
        self.bias = self.add_weight(shape=(self.members, self.units), name="bias",
                                    initializer="zeros")

    def call(self, inputs):
        out = self.activation(ops.einsum("bmf,mfo->bmo", inputs, self.kernel) + self.bias)
        return [out[:, j] for j in range(self.members)]

    def compute_output_shape(self, input_shape):
        return [(input_shape[0], self.units)] * self.members

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "members": self.members, "units": self.units,
                "activation": self.activation_name}


_SETTINGS = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
             "activity_regularizer", "kernel_constraint", "recurrent_constraint",
             "bias_constraint")


def _plain(layer: keras.layers.Layer) -> bool:
    """No setting the stacked layers would drop: regularizers, constraints, another dtype."""
    cell = getattr(layer, "cell", layer)
    return all(getattr(cell, name, None) is None and getattr(layer, name, None) is None
               for name in _SETTINGS) and layer.dtype_policy.name == "float32"


def _plan(network: keras.Model) -> list[keras.layers.Layer] | None:
    """The network's layers in order when each has a stacked form, else None. The types
    are matched exactly: a subclass (``SpatialDropout1D``, a user's LSTM) may compute
    something else."""
    layers = [layer for layer in network.layers
              if not isinstance(layer, keras.layers.InputLayer)]
    if not layers or type(layers[-1]) is not keras.layers.Dense:
        return None
    for i, layer in enumerate(layers):
        kind = type(layer)
        if kind in (keras.layers.LSTM, keras.layers.GRU):
            cell = layer.cell
            ok = cell.use_bias and not cell.dropout and not cell.recurrent_dropout \
                and (kind is keras.layers.LSTM or cell.reset_after) \
                and not layer.go_backwards and not layer.stateful
        elif kind is keras.layers.Dropout:  # after a recurrent layer: each member its mask
            ok = i > 0 and not layer.noise_shape
        elif kind is keras.layers.Dense:
            ok = layer is layers[-1] and layer.use_bias
        else:
            return None
        if not ok or not _plain(layer):
            return None
    recurrent = [layer for layer in layers if isinstance(layer, keras.layers.RNN)]
    if not recurrent or recurrent[-1].return_sequences \
            or not all(layer.return_sequences for layer in recurrent[:-1]):
        return None
    if len(network.inputs) != 1 or len(network.inputs[0].shape) != 3:
        return None
    return layers


def stackable(network: keras.Model) -> bool:
    """Whether ``network`` is a chain of LSTM/GRU, Dropout and a final Dense layer, with
    no regularizer, constraint or other dtype (see ``_plan``)."""
    return _plan(network) is not None


def stack(networks: list[keras.Model], name: str = "stacked_ensemble") -> keras.Model:
    """One uncompiled model holding ``networks`` (all of one stackable shape) along a
    member axis, each member starting from its network's weights; one output per member.

    Raises:
        ValueError: A network that is not stackable, or networks of different shapes.
    """
    plans = [_plan(n) for n in networks]
    if any(p is None for p in plans):
        raise ValueError("every network must be a chain of LSTM/GRU, Dropout and Dense")
    first = plans[0]
    m = len(networks)
    inputs = keras.Input(batch_shape=networks[0].inputs[0].shape,
                         dtype=networks[0].inputs[0].dtype)
    x = inputs
    for i, layer in enumerate(first):
        parts = [p[i] for p in plans]
        if any(type(part) is not type(layer) for part in parts):
            raise ValueError("every network must have the same layers")
        if isinstance(layer, keras.layers.Dropout):
            x = keras.layers.Dropout(layer.rate, seed=_seed(layer))(x)
            continue
        stacked = [np.stack(w) for w in zip(*(p.get_weights() for p in parts), strict=True)]
        if isinstance(layer, keras.layers.Dense):
            out = StackedDense(m, layer.units, _activation_name(layer.activation))
            outputs = out(x)
            out.set_weights(stacked)
        else:
            cell = layer.cell
            rec = StackedRecurrent(m, cell.units,
                                   "lstm" if isinstance(layer, keras.layers.LSTM) else "gru",
                                   _activation_name(cell.activation),
                                   _activation_name(cell.recurrent_activation),
                                   layer.return_sequences)
            x = rec(x)
            rec.assign(stacked)
    return keras.Model(inputs, outputs, name=name)


def _seed(layer: keras.layers.Dropout) -> int | None:
    return layer.seed if isinstance(layer.seed, int) else None
