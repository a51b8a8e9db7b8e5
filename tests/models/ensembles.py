"""What every seed ensemble must do, whatever its form (stacked or side by side)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models import ensemble, lstm


def assert_reloaded_continues_exactly(builder, seeds: list[int], X: np.ndarray,
                                      y: np.ndarray, tmp_path: Path) -> None:
    """An ensemble trained on the first 50 rows, saved and reloaded, forecasts as the
    original does; both reseeded and trained on every row, they still do."""
    original = ensemble.build(builder, seeds)
    ensemble.train(original, X[:50], y[:50], epochs=2, batch_size=16, seed=1)
    reloaded = lstm.load(lstm.save(original, tmp_path / "ensemble.keras", {}))
    np.testing.assert_array_equal(ensemble.predict_members(original, X),
                                  ensemble.predict_members(reloaded, X))
    for model in (original, reloaded):
        ensemble.reseed(model, [s + 1 for s in seeds])
        ensemble.train(model, X, y, epochs=2, batch_size=16, seed=2)
    np.testing.assert_array_equal(ensemble.predict_members(original, X),
                                  ensemble.predict_members(reloaded, X))
