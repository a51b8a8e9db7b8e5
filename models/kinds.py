"""The forecaster kinds behind one protocol, by name.

Every kind's fold model has ``warm_start`` (whether a re-fit continues from the previous
fold), ``build(cfg, n_features, n_outputs, fold)``, ``fit(X, y, *, fold, epochs) -> loss``,
``predict_members(X) -> (members, windows, outputs)``, ``save(directory) -> file names``
and ``load(cfg, directory)``. The walk-forward calls only these, whatever the kind.
Kinds import their libraries (Keras, scikit-learn, LightGBM) when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

# kind -> (module, class)
_KINDS = {"lstm": ("models.neural", "NeuralModel"), "gru": ("models.neural", "NeuralModel"),
          "transformer": ("models.neural", "NeuralModel"),
          "linear": ("models.linear", "LinearModel"),
          "lightgbm": ("models.boosting", "LightGBMModel"),
          "custom": ("models.custom", "CustomModel")}
NEURAL = ("lstm", "gru", "transformer")


def model_class(kind: str) -> Any:
    """The fold-model class of ``kind`` (its library is imported now)."""
    module, name = _KINDS[kind]
    return getattr(importlib.import_module(module), name)


def warm_starts(kind: str) -> bool:
    """Whether folds of ``kind`` continue from the previous fold (known without imports)."""
    return kind in NEURAL
