"""Kind ``linear``: ridge regression on the flattened window (scikit-learn's ``Ridge``).

The honest baseline every deep model must beat: one linear function of the window's
inputs per forecast symbol, with an L2 penalty ``alpha`` and an intercept. It has a
closed-form fit, so every fold is fit afresh (no warm start) and every seed gives the
same model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import Ridge

FILE = "model.npz"


class LinearModel:
    """One fold of a ridge forecaster: coefficients and intercepts per member."""

    warm_start = False

    def __init__(self, cfg: Any, coefs: list[np.ndarray] | None = None,
                 intercepts: list[np.ndarray] | None = None):
        self.cfg = cfg
        self.coefs, self.intercepts = coefs or [], intercepts or []

    @classmethod
    def build(cls, cfg: Any, n_features: int, n_outputs: int, fold: int) -> LinearModel:
        return cls(cfg)

    def fit(self, X: np.ndarray, y: np.ndarray, *, fold: int, epochs: int) -> float:
        """Fit every member (identical: the fit has no randomness); returns the training MSE."""
        flat = _flat(X)
        ridge = Ridge(alpha=self.cfg.alpha).fit(flat, y)
        coef = np.atleast_2d(ridge.coef_).astype("float64")
        intercept = np.atleast_1d(ridge.intercept_).astype("float64")
        self.coefs = [coef] * self.cfg.seeds
        self.intercepts = [intercept] * self.cfg.seeds
        return float(np.mean((self._predict(flat, 0) - y) ** 2))

    def predict_members(self, X: np.ndarray) -> np.ndarray:
        flat = _flat(X)
        return np.stack([self._predict(flat, j) for j in range(len(self.coefs))])

    def _predict(self, flat: np.ndarray, member: int) -> np.ndarray:
        return flat @ self.coefs[member].T + self.intercepts[member]

    def save(self, directory: Path) -> list[str]:
        np.savez(directory / FILE, coef=self.coefs[0], intercept=self.intercepts[0])
        return [FILE]

    @classmethod
    def load(cls, cfg: Any, directory: Path) -> LinearModel:
        with np.load(directory / FILE) as saved:
            coef, intercept = saved["coef"], saved["intercept"]
        return cls(cfg, [coef] * cfg.seeds, [intercept] * cfg.seeds)


def _flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1).astype("float64")
