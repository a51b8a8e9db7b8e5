"""Kind ``lightgbm``: gradient-boosted trees (LightGBM) on the flattened window.

One booster per forecast symbol (and per seed): a regression on L2 loss, or a binary
classifier for the ``direction`` target. Every fold is fit afresh (trees re-fit, no warm
start). Runs on one thread with LightGBM's deterministic mode, so a seed gives the same
trees in any process. Each booster is kept as LightGBM's text model; forecasts always come
from the text form, so a reloaded fold forecasts exactly as the run that fit it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np


class LightGBMModel:
    """One fold of a LightGBM forecaster: boosters[member][symbol]."""

    warm_start = False

    def __init__(self, cfg: Any, boosters: list[list[lgb.Booster]] | None = None):
        self.cfg, self.boosters = cfg, boosters or []

    @classmethod
    def build(cls, cfg: Any, n_features: int, n_outputs: int, fold: int) -> LightGBMModel:
        return cls(cfg)

    def params(self, seed: int) -> dict[str, Any]:
        cfg = self.cfg
        bagging = cfg.subsample < 1
        return {"objective": "binary" if cfg.classifier else "regression",
                "learning_rate": cfg.learning_rate, "num_leaves": cfg.num_leaves,
                "min_data_in_leaf": cfg.min_child_samples,
                "bagging_fraction": cfg.subsample, "bagging_freq": 1 if bagging else 0,
                "feature_fraction": cfg.colsample, "seed": seed, "deterministic": True,
                "force_row_wise": True, "num_threads": 1, "verbose": -1}

    def fit(self, X: np.ndarray, y: np.ndarray, *, fold: int, epochs: int) -> float:
        """Fit a booster per member and symbol; returns the members' training MSE."""
        from models.neural import member_seed  # the seeding rule every kind shares

        flat = X.reshape(len(X), -1).astype("float64")
        self.boosters = []
        for j in range(self.cfg.seeds):
            params = self.params(member_seed(self.cfg.seed, j) + fold)
            row = []
            for s in range(y.shape[1]):
                booster = lgb.train(params, lgb.Dataset(flat, y[:, s]),
                                    num_boost_round=self.cfg.n_estimators)
                row.append(lgb.Booster(model_str=booster.model_to_string()))
            self.boosters.append(row)
        return float(np.mean((self.predict_members(X) - y[None]) ** 2))

    def predict_members(self, X: np.ndarray) -> np.ndarray:
        flat = X.reshape(len(X), -1).astype("float64")
        return np.stack([np.column_stack([b.predict(flat) for b in row]) if len(flat) else
                         np.empty((0, len(row))) for row in self.boosters])

    def save(self, directory: Path) -> list[str]:
        names = []
        for j, row in enumerate(self.boosters):
            for s, booster in enumerate(row):
                name = f"member_{j}_output_{s}.txt"
                (directory / name).write_text(booster.model_to_string())
                names.append(name)
        return names

    @classmethod
    def load(cls, cfg: Any, directory: Path) -> LightGBMModel:
        boosters = []
        for j in range(cfg.seeds):
            files = sorted(directory.glob(f"member_{j}_output_*.txt"),
                           key=lambda p: int(p.stem.rsplit("_", 1)[1]))
            boosters.append([lgb.Booster(model_str=f.read_text()) for f in files])
        return cls(cfg, boosters)
