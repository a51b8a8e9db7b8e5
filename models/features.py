"""Windows of bars -> normalised model inputs and targets, after the 2018 tutorial.

A window ending at bar t holds bars t - w + 1 .. t of every feature of every symbol,
each column divided by its first row, minus 1 (``x / x[0] - 1``). The target is the
next close over the window's first close, minus 1: ``close[t + 1] / close[t - w + 1] - 1``.
Nothing is fit to the data, so nothing can leak from one fold into another, and a window
uses bars <= t only.

Example:
    >>> values, names = feature_matrix(frames, ("close", "volume"))
    >>> windows = make_windows(values, close_matrix(frames, ["BTC/USDT"]), 7)
    >>> windows.X.shape  # (bars - 6, 7, 4)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view


@dataclass(frozen=True)
class Windows:
    """Model inputs and targets for a set of windows, indexed by their last bar."""

    X: np.ndarray  # (windows, window_len, features) float32, normalised by the first row
    y: np.ndarray  # (windows, symbols) target; NaN where bar t + 1 is not in the data
    base: np.ndarray  # (windows, symbols) first close of each window
    last: np.ndarray  # (windows, symbols) close of bar t
    end: np.ndarray  # (windows,) index of each window's last bar t

    def __len__(self) -> int:
        return len(self.end)

    def select(self, mask: np.ndarray) -> Windows:
        """The windows where ``mask`` (boolean, or integer positions) selects."""
        return Windows(self.X[mask], self.y[mask], self.base[mask], self.last[mask],
                       self.end[mask])


def feature_matrix(frames: Mapping[str, pd.DataFrame],
                   features: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Stack ``features`` of every symbol side by side: (bars, symbols x features)."""
    columns, names = [], []
    for symbol, frame in frames.items():
        for feature in features:
            columns.append(frame[feature].to_numpy(dtype="float64"))
            names.append(f"{symbol}:{feature}")
    return np.column_stack(columns), names


def close_matrix(frames: Mapping[str, pd.DataFrame], symbols: Sequence[str]) -> np.ndarray:
    """Closes of ``symbols``: (bars, symbols)."""
    return np.column_stack([frames[s]["close"].to_numpy(dtype="float64") for s in symbols])


def make_windows(values: np.ndarray, closes: np.ndarray, window_len: int) -> Windows:
    """Every complete window of ``values`` with its target from ``closes``.

    Args:
        values: (bars, features) raw feature values.
        closes: (bars, symbols) closes of the forecast symbols.
        window_len: Bars per window.

    Returns:
        Windows ending at bars ``window_len - 1`` .. ``bars - 1``; the last has no target.
    """
    bars = len(values)
    if bars < window_len:
        empty = np.empty((0, closes.shape[1]))
        return Windows(np.empty((0, window_len, values.shape[1]), "float32"), empty, empty,
                       empty, np.empty(0, dtype=int))
    raw = sliding_window_view(values, window_len, axis=0).transpose(0, 2, 1)
    first = raw[:, :1, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        # A zero first row (a filled gap's zero volume) has no scale: such columns read 0.
        X = np.where(first != 0, raw / np.where(first != 0, first, 1.0) - 1.0, 0.0)
    end = np.arange(window_len - 1, bars)
    base = closes[end - window_len + 1]
    nxt = np.full_like(base, np.nan)
    nxt[:-1] = closes[end[:-1] + 1]
    return Windows(X.astype("float32"), nxt / base - 1.0, base, closes[end], end)


def to_prices(windows: Windows, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Model outputs -> (predicted next close, predicted return over the last close)."""
    close = windows.base * (1.0 + predicted)
    return close, close / windows.last - 1.0
