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


MEMBER_STRIDE = 1000  # member j's seed is seed + 1000 j: far from every fold offset


def member_seed(seed: int, member: int) -> int:
    """The base seed of member ``member`` of a forecaster with several seeds (member 0 uses
    the forecaster's own seed); the rule every kind shares."""
    return seed + MEMBER_STRIDE * member


# How the seeds of an ``lstm`` or ``gru`` forecaster are trained together, part of the
# store key of every fold with ``seeds`` above 1 (so no fold trained another way is
# reused): 2 = the members stacked along a member axis (models.stacked); unmarked = side by
# side, as the transformer's members still are.
ENSEMBLE_FORMAT = 2
STACKED = ("lstm", "gru")


def ensemble_format(kind: str, seeds: int) -> int | None:
    """The seed-ensemble format a fold of ``kind`` with ``seeds`` members is keyed by
    (None for one seed and for kinds whose members are not stacked)."""
    return ENSEMBLE_FORMAT if kind in STACKED and seeds > 1 else None


def warm_starts(kind: str) -> bool:
    """Whether folds of ``kind`` continue from the previous fold (known without imports)."""
    return kind in NEURAL
