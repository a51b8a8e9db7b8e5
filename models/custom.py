"""Kind ``custom``: any class of the user's that follows the forecaster protocol.

A config names it as ``class: package.module:Name`` (importable from the current
directory or the installed packages) with constructor keyword arguments in ``params``.
The class must have:

- ``fit(X, y, *, seed)``: X is ``(windows, window_len, columns)`` float32, y is
  ``(windows, symbols)`` float64 (the configured target), seed an int;
- ``predict(X)``: returns ``(windows, symbols)`` forecasts of the target;
- ``save(path)``: writes itself into the directory ``path`` (which exists);
- ``load(path)``: a classmethod or staticmethod returning the instance ``save`` wrote.

Each member (``seeds``) is its own instance, fit with its own seed; every fold is fit
afresh. See README "Forecasters" for a working example.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.protocol import load_class


class CustomModel:
    """One fold of a custom forecaster: one instance of the user's class per member."""

    warm_start = False

    def __init__(self, cfg: Any, members: list[Any] | None = None):
        self.cfg, self.members = cfg, members or []

    @classmethod
    def build(cls, cfg: Any, n_features: int, n_outputs: int, fold: int) -> CustomModel:
        return cls(cfg)

    def fit(self, X: np.ndarray, y: np.ndarray, *, fold: int, epochs: int) -> float:
        from models.neural import member_seed  # the seeding rule every kind shares

        user = load_class(self.cfg.class_)
        self.members = []
        for j in range(self.cfg.seeds):
            member = user(**self.cfg.params)
            member.fit(X, y, seed=member_seed(self.cfg.seed, j) + fold)
            self.members.append(member)
        return float(np.mean((self.predict_members(X) - y[None]) ** 2))

    def predict_members(self, X: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(m.predict(X), dtype="float64").reshape(len(X), -1)
                         for m in self.members])

    def save(self, directory: Path) -> list[str]:
        names = []
        for j, member in enumerate(self.members):
            (directory / f"member_{j}").mkdir()
            member.save(directory / f"member_{j}")
            names.append(f"member_{j}")
        return names

    @classmethod
    def load(cls, cfg: Any, directory: Path) -> CustomModel:
        user = load_class(cfg.class_)
        return cls(cfg, [user.load(directory / f"member_{j}") for j in range(cfg.seeds)])
