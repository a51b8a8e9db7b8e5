"""A tiny forecaster class of a user's, following the protocol (used by the tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class LastReturnOLS:
    """Least squares of the target on the window's last row (plus an intercept)."""

    def __init__(self, ridge: float = 0.0):
        self.ridge = ridge
        self.coef: np.ndarray | None = None

    def _design(self, X: np.ndarray) -> np.ndarray:
        last = X[:, -1, :].astype("float64")
        return np.column_stack([np.ones(len(last)), last])

    def fit(self, X: np.ndarray, y: np.ndarray, *, seed: int) -> None:
        A = self._design(X)
        gram = A.T @ A + self.ridge * np.eye(A.shape[1])
        self.coef = np.linalg.solve(gram, A.T @ y)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._design(X) @ self.coef

    def save(self, path: Path) -> None:
        np.save(Path(path) / "coef.npy", self.coef)
        (Path(path) / "settings.json").write_text(json.dumps({"ridge": self.ridge}))

    @classmethod
    def load(cls, path: Path) -> LastReturnOLS:
        model = cls(**json.loads((Path(path) / "settings.json").read_text()))
        model.coef = np.load(Path(path) / "coef.npy")
        return model


class NoPredict:
    """Lacks predict: a config naming it is refused."""

    def fit(self, X, y, *, seed):
        pass

    def save(self, path):
        pass

    @classmethod
    def load(cls, path):
        return cls()
