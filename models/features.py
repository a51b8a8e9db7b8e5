"""Windows of bars -> model inputs and targets, with no future rows.

A window ending at bar t holds bars t - w + 1 .. t. Its columns, per symbol:

- **raw** features (``open``, ``high``, ``low``, ``close``, ``volume``): each column
  divided by its first row, minus 1 (``x / x[0] - 1``), as in the 2018 tutorial; nothing
  is fit to the data, so nothing leaks between folds;
- **derived** causal features, each computed per symbol from bars <= t only:
  ``return_K`` (K-bar log return), ``volatility_K`` (standard deviation of the last K
  one-bar log returns), ``rsi_K`` (Wilder's relative strength index over K bars, as a
  fraction in [0, 1]), ``volume_z_K`` (volume over the mean of the last K volumes, in
  standard deviations of them); taken as they are, then standardised by a ``Scaler`` fit
  on each fold's training windows only;
- **calendar** features, once for all symbols: ``hour`` and ``weekday`` as sine and
  cosine of their position in the day and the week.

A window whose derived features are not all defined yet (fewer than K bars before it)
is left out: it is neither trained on nor forecast from.

The target of the window ending at bar t, with ``c`` the closes of a forecast symbol:

- ``window_ratio``: ``c[t + 1] / c[t - w + 1] - 1`` (the tutorial's);
- ``log_return``: ``log(c[t + 1] / c[t])``;
- ``direction``: 1 when ``c[t + 1] > c[t]``, else 0 (a classifier predicts its
  probability).

Example:
    >>> windows = build_windows(frames, forecaster)  # a forecaster config entry
    >>> windows.X.shape  # (windows, window_len, columns)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from models.feature_names import CALENDAR, parse_feature


@dataclass(frozen=True)
class Windows:
    """Model inputs and targets for a set of windows, indexed by their last bar."""

    X: np.ndarray  # (windows, window_len, columns) float32
    y: np.ndarray  # (windows, symbols) target; NaN where bar t + 1 is not in the data
    base: np.ndarray  # (windows, symbols) first close of each window
    last: np.ndarray  # (windows, symbols) close of bar t
    end: np.ndarray  # (windows,) index of each window's last bar t
    scaled_from: int = -1  # first column fit by a fold's Scaler (-1: none)

    def __len__(self) -> int:
        return len(self.end)

    def select(self, mask: np.ndarray) -> Windows:
        """The windows where ``mask`` (boolean, or integer positions) selects."""
        return replace(self, X=self.X[mask], y=self.y[mask], base=self.base[mask],
                       last=self.last[mask], end=self.end[mask])


@dataclass(frozen=True)
class Scaler:
    """Mean and standard deviation of the derived columns, fit on training windows."""

    start: int  # first scaled column
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, windows: Windows) -> Scaler | None:
        """Fit on ``windows`` (a fold's training windows); None when nothing is scaled."""
        if windows.scaled_from < 0 or len(windows) == 0:
            return None
        part = windows.X[:, :, windows.scaled_from:].astype("float64")
        flat = part.reshape(-1, part.shape[-1])
        std = flat.std(axis=0)
        return cls(windows.scaled_from, flat.mean(axis=0), np.where(std > 0, std, 1.0))

    def apply(self, windows: Windows) -> Windows:
        """``windows`` with the derived columns standardised."""
        X = windows.X.copy()
        X[:, :, self.start:] = ((X[:, :, self.start:] - self.mean) / self.std).astype("float32")
        return replace(windows, X=X)


def scaled(windows: Windows, scaler: Scaler | None) -> Windows:
    """``windows`` through ``scaler`` (unchanged when there is none)."""
    return windows if scaler is None else scaler.apply(windows)


# --- the feature columns ----------------------------------------------------------------

def split_features(features: Sequence[str]) -> tuple[list[str], list[tuple[str, int]],
                                                      list[str]]:
    """(raw names, derived (name, K) pairs, calendar names) of a feature list."""
    raw, derived, calendar = [], [], []
    for name in features:
        base, k = parse_feature(name)
        if k is not None:
            derived.append((base, k))
        elif base in CALENDAR:
            calendar.append(base)
        else:
            raw.append(base)
    return raw, derived, calendar


def feature_matrix(frames: Mapping[str, pd.DataFrame],
                   features: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Stack raw ``features`` of every symbol side by side: (bars, symbols x features)."""
    columns, names = [], []
    for symbol, frame in frames.items():
        for feature in features:
            columns.append(frame[feature].to_numpy(dtype="float64"))
            names.append(f"{symbol}:{feature}")
    return np.column_stack(columns), names


def derived_matrix(frames: Mapping[str, pd.DataFrame],
                   derived: Sequence[tuple[str, int]]) -> np.ndarray:
    """Derived features of every symbol side by side: (bars, symbols x derived)."""
    columns = [derived_column(frame, name, k) for frame in frames.values()
               for name, k in derived]
    n = len(next(iter(frames.values())))
    return np.column_stack(columns) if columns else np.empty((n, 0))


def derived_column(frame: pd.DataFrame, name: str, k: int) -> np.ndarray:
    """One derived feature of one symbol at every bar, from bars <= t only (NaN before
    K bars of history)."""
    close = frame["close"].astype("float64")
    log_return = np.log(close).diff()
    if name == "return":
        values = np.log(close / close.shift(k))
    elif name == "volatility":
        values = log_return.rolling(k).std(ddof=1)
    elif name == "rsi":
        change = close.diff()
        gain = change.clip(lower=0).ewm(alpha=1 / k, adjust=False, min_periods=k).mean()
        loss = (-change.clip(upper=0)).ewm(alpha=1 / k, adjust=False, min_periods=k).mean()
        total = gain + loss
        values = (gain / total.where(total > 0)).fillna(0.5).where(gain.notna())
    elif name == "volume_z":
        volume = frame["volume"].astype("float64")
        mean, std = volume.rolling(k).mean(), volume.rolling(k).std(ddof=1)
        values = ((volume - mean) / std.where(std > 0)).fillna(0.0).where(mean.notna())
    else:  # parse_feature admits no other name
        raise ValueError(f"unknown derived feature {name}")
    return values.to_numpy(dtype="float64")


def calendar_matrix(index: pd.DatetimeIndex, calendar: Sequence[str]) -> np.ndarray:
    """Sine and cosine of the hour of the day and the day of the week: (bars, 2 x names)."""
    columns = []
    for name in calendar:
        phase = (index.hour + index.minute / 60) / 24 if name == "hour" else \
            (index.dayofweek + index.hour / 24) / 7
        angle = 2 * np.pi * np.asarray(phase, dtype="float64")
        columns += [np.sin(angle), np.cos(angle)]
    return np.column_stack(columns) if columns else np.empty((len(index), 0))


def close_matrix(frames: Mapping[str, pd.DataFrame], symbols: Sequence[str]) -> np.ndarray:
    """Closes of ``symbols``: (bars, symbols)."""
    return np.column_stack([frames[s]["close"].to_numpy(dtype="float64") for s in symbols])


# --- windows ------------------------------------------------------------------------------

def build_windows(frames: Mapping[str, pd.DataFrame], forecaster: Any) -> Windows:
    """Every window of the aligned frames for one forecaster (``window_len``,
    ``features`` and target of a forecaster config entry, or a ``model:`` section), with
    targets for every symbol."""
    raw, derived, calendar = split_features(forecaster.features)
    target = getattr(forecaster, "resolved_target", "window_ratio")
    closes = close_matrix(frames, list(frames))
    index = next(iter(frames.values())).index
    values = feature_matrix(frames, raw)[0] if raw else np.empty((len(index), 0))
    extra = np.column_stack([derived_matrix(frames, derived), calendar_matrix(index, calendar)])
    return make_windows(values, closes, forecaster.window_len, target, extra)


def make_windows(values: np.ndarray, closes: np.ndarray, window_len: int,
                 target: str = "window_ratio", extra: np.ndarray | None = None) -> Windows:
    """Every complete window of ``values`` (and ``extra``) with its target from ``closes``.

    Args:
        values: (bars, columns) raw feature values, normalised by each window's first row.
        closes: (bars, symbols) closes of the forecast symbols.
        window_len: Bars per window.
        target: ``window_ratio``, ``log_return`` or ``direction``. Defaults to
            ``window_ratio``.
        extra: (bars, columns) derived and calendar values, taken as they are (and scaled
            per fold); windows where any of them is undefined are left out. Defaults to
            None.

    Returns:
        Windows ending at bars ``window_len - 1`` .. ``bars - 1``; the last has no target.
    """
    bars = len(values)
    extra = np.empty((bars, 0)) if extra is None else extra
    width = values.shape[1] + extra.shape[1]
    if bars < window_len:
        empty = np.empty((0, closes.shape[1]))
        return Windows(np.empty((0, window_len, width), "float32"), empty, empty, empty,
                       np.empty(0, dtype=int))
    raw = sliding_window_view(values, window_len, axis=0).transpose(0, 2, 1)
    first = raw[:, :1, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        # A zero first row (a filled gap's zero volume) has no scale: such columns read 0.
        X = np.where(first != 0, raw / np.where(first != 0, first, 1.0) - 1.0, 0.0)
    end = np.arange(window_len - 1, bars)
    if extra.shape[1]:
        more = sliding_window_view(extra, window_len, axis=0).transpose(0, 2, 1)
        X = np.concatenate([X, more], axis=2)
    base, last = closes[end - window_len + 1], closes[end]
    nxt = np.full_like(base, np.nan)
    nxt[:-1] = closes[end[:-1] + 1]
    windows = Windows(X.astype("float32"), target_values(target, nxt, last, base), base, last,
                      end, values.shape[1] if extra.shape[1] else -1)
    if extra.shape[1]:
        windows = windows.select(np.isfinite(windows.X).all(axis=(1, 2)))
    return windows


def target_values(target: str, nxt: np.ndarray, last: np.ndarray,
                  base: np.ndarray) -> np.ndarray:
    """The training target from the next close (NaN where it is not in the data)."""
    with np.errstate(invalid="ignore"):
        if target == "window_ratio":
            return nxt / base - 1.0
        if target == "log_return":
            return np.log(nxt / last)
        return np.where(np.isnan(nxt), np.nan, (nxt > last).astype("float64"))


def to_prices(windows: Windows, predicted: np.ndarray, target: str = "window_ratio",
              scale: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Model outputs -> (predicted next close, predicted return over the last close).

    A ``direction`` probability ``p`` becomes the return ``(2p - 1) x scale``, ``scale``
    being the mean absolute one-bar return of the fold's training windows (per symbol):
    a sure "up" predicts an average move up, a coin toss predicts no move.
    """
    if target == "window_ratio":
        close = windows.base * (1.0 + predicted)
        return close, close / windows.last - 1.0
    if target == "log_return":
        ret = np.expm1(predicted)
    else:
        ret = (2.0 * predicted - 1.0) * (1.0 if scale is None else scale)
    return windows.last * (1.0 + ret), ret


def direction_scale(train: Windows, closes: np.ndarray) -> np.ndarray:
    """Mean absolute one-bar return over a fold's training windows, per symbol."""
    following = closes[np.minimum(train.end + 1, len(closes) - 1)]
    return np.nanmean(np.abs(following / train.last - 1.0), axis=0)
