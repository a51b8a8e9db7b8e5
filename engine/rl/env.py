"""The trading environment: a Gymnasium driver of the execution core.

One step is one bar. The observation returned by ``reset`` or ``step`` ends at the close of
bar t; the action taken on it is a decision at that close, filled at the open of bar t + 1
by ``Account.rebalance`` with the config's commission and slippage (the same call the
backtest's broker makes), and the reward is the log change of the account's equity from
the close of bar t to the close of bar t + 1, after every cost. A fill never uses the close
the agent has just seen.

The rule that turns actions into account calls is the replay strategy's (``strategies/
replay.py``): a new target is traded to (``resize``), a repeated target keeps the position.
So the targets an episode recorded, replayed in a backtest, give the same equity curve.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from engine.config import BrokerConfig, RLConfig
from engine.errors import ConfigError
from engine.execution import Account, Bar, CostModel, cost_model, rules
from engine.execution.records import FUNDING
from engine.timeframes import timeframe_ms
from models.features import build_windows

log = logging.getLogger(__name__)

#: Reward of a step whose equity reaches zero or below (the episode ends there).
RUIN_REWARD = math.log(1e-6)


@dataclass(frozen=True)
class EnvData:
    """What the environment reads, per bar, computed once for every episode.

    Bar numbers index every array; nothing of a bar after t is read to observe bar t.
    """

    index: pd.DatetimeIndex
    symbols: tuple[str, ...]  # traded symbols (one account)
    opens: np.ndarray  # (bars, symbols)
    highs: np.ndarray
    lows: np.ndarray
    closes: np.ndarray
    funding: np.ndarray  # (bars, symbols) perpetual funding rate summed per bar; 0 for spot
    windows: np.ndarray  # (bars, window_len * features) float32; NaN rows before the first
    forecast: np.ndarray | None  # (bars, symbols) predicted next-bar return, NaN where none
    window_len: int
    first_forecast_bar: int  # the backtest's first traded bar (walk-forward test start)
    bar_ms: int  # length of one bar (data.timeframe), for per-bar interest


def action_space(kind: str, n_symbols: int) -> gym.Space:
    """The Gymnasium action space of ``rl.action_space`` for ``n_symbols`` traded symbols."""
    if kind == "continuous":
        return gym.spaces.Box(-1.0, 1.0, (n_symbols,), np.float32)
    sides = 2 if kind == "long_flat" else 3
    if n_symbols == 1:
        return gym.spaces.Discrete(sides)
    return gym.spaces.MultiDiscrete([sides] * n_symbols)


_MEANING = {"long_flat": "0 = flat, 1 = long", "short_flat_long": "0 = short, 1 = flat, 2 = long",
            "continuous": "the target exposure, from -1 to 1"}


def action_targets(kind: str, action: Any, symbols: tuple[str, ...],
                   leverage: float) -> dict[str, float]:
    """Target weights of equity per symbol for ``action``.

    Discrete: long_flat 0 = flat, 1 = long; short_flat_long 0 = short, 1 = flat, 2 = long;
    each symbol's side takes ``1 / len(symbols)`` of equity. Continuous: the exposure per
    symbol, in [-1, 1], scaled down together if the sum of their sizes exceeds
    ``leverage``.

    Raises:
        ValueError: The action is not in the action space (``check_action``).
    """
    values = check_action(kind, action, symbols, leverage)
    n = len(symbols)
    if kind == "continuous":
        weights = values.astype("float64")
        total = float(np.abs(weights).sum())
        if total > leverage:
            weights = weights * (leverage / total)
        return {s: float(w) for s, w in zip(symbols, weights, strict=True)}
    offset = 0 if kind == "long_flat" else 1
    return {s: float(int(a) - offset) / n for s, a in zip(symbols, values, strict=True)}


def check_action(kind: str, action: Any, symbols: tuple[str, ...],
                 leverage: float) -> np.ndarray:
    """``action`` as a flat array of one value per symbol, once it is in the action space.

    Nothing is clipped or rounded: a side the space does not have, a wrong shape, a value
    that is not a finite number (or, for a discrete space, not an integer) and an exposure
    outside [-1, 1] are errors.

    Raises:
        ValueError: One line naming the action, the space and the environment's settings.
    """
    n = len(symbols)
    values = np.asarray(action)
    problem = None
    if values.dtype.kind not in "iuf":
        problem = "not a number" if n == 1 else "not numbers"
    elif values.size != n or (values.ndim > 1 or (n > 1 and values.ndim != 1)):
        problem = f"shape {values.shape}, expected ({n},)" + (" or a scalar" if n == 1 else "")
    elif not np.isfinite(values).all():
        problem = "not finite"
    elif kind == "continuous":
        if (np.abs(values) > 1.0).any():
            problem = "an exposure outside [-1, 1]"
    elif values.dtype.kind == "f":
        problem = "not an integer"
    elif ((values < 0) | (values >= (2 if kind == "long_flat" else 3))).any():
        problem = "a side the space does not have"
    if problem is None:
        return values.reshape(-1)
    shown = " ".join(np.array2string(values, separator=", ", threshold=8).split())
    raise ValueError(f"action {shown} is not in the action space {action_space(kind, n)} "
                     f"({problem}): rl.action_space = {kind} ({_MEANING[kind]}) for "
                     f"{', '.join(symbols)}, broker.leverage = {leverage:g}")


class TradingEnv(gym.Env):
    """Trade ``data.symbols`` from bar ``start`` to bar ``end`` (inclusive) on one account.

    Build it with ``engine.rl.make_env``. An episode runs from the close of ``start`` to the
    close of ``end``: ``end - start`` steps.

    Observation (float32 vector): the LSTM's normalised window ending at bar t (window_len x
    features of every data symbol, flattened bar by bar), then the forecast return per
    traded symbol (with ``rl.use_forecast``), the exposure per traded symbol (signed weight
    of equity at the close) and the cash fraction (cash / equity).

    ``step`` raises ``ValueError`` for an action outside ``action_space`` (see
    ``check_action``) and then changes nothing.

    ``info``: ``time`` (ISO time of bar t, at whose close the next action is decided) and
    ``equity`` (marked at that close); ``step`` adds ``target`` (the weight the action asked
    for: a float with one symbol, ``{symbol: weight}`` with several) and ``decided_at``
    (the bar whose close decided it).
    """

    metadata = {"render_modes": []}

    def __init__(self, data: EnvData, settings: RLConfig, cash: float, costs: CostModel,
                 leverage: float, start: int, end: int, borrow_rate: float = 0.0):
        self.data, self.settings = data, settings
        self.cash, self.costs, self.leverage = cash, costs, leverage
        # broker.borrow_rate (yearly) as the interest of one of the data's bars
        self.borrow_per_bar = rules.bar_rate(borrow_rate, data.bar_ms)
        self.start, self.end = start, end
        n = len(data.symbols)
        size = data.windows.shape[1] + (n if settings.use_forecast else 0) + n + 1
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)
        self.action_space = action_space(settings.action_space, n)
        self.account = Account(cash, costs, leverage, self.borrow_per_bar)
        self.bar = start
        self.last_target: dict[str, float] | None = None
        self._sharpe = (0.0, 0.0)

    # --- Gymnasium API ------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.account = Account(self.cash, self.costs, self.leverage, self.borrow_per_bar)
        self.bar, self.last_target, self._sharpe = self.start, None, (0.0, 0.0)
        return self._observe(), self._info()

    def step(self, action):
        if self.bar >= self.end:
            raise RuntimeError("the episode has ended; call reset()")
        targets = action_targets(self.settings.action_space, action, self.data.symbols,
                                 self.leverage)
        before = self.equity()
        decided_at = self.data.index[self.bar]
        self.bar += 1
        self.trade(targets, decided_at)
        after = self.equity()
        ruined = after <= 0
        reward = RUIN_REWARD if ruined else self._reward(math.log(after / before))
        info = self._info()
        info["target"] = (next(iter(targets.values())) if len(targets) == 1 else targets)
        info["decided_at"] = decided_at.isoformat()
        return self._observe(), reward, bool(ruined or self.bar >= self.end), False, info

    # --- the account ----------------------------------------------------------------------

    def trade(self, targets: dict[str, float], decided_at: pd.Timestamp) -> None:
        """Fill ``targets`` at the open of the current bar (the replay strategy's rule),
        then pay the bar's funding and borrow interest at its close (as the backtest's
        broker does)."""
        resize = targets != self.last_target
        self.last_target = targets
        d, t = self.data, self.bar
        bars = {s: Bar(d.opens[t, j], d.highs[t, j], d.lows[t, j])
                for j, s in enumerate(d.symbols)}
        when = d.index[t].tz_convert("UTC").tz_localize(None).to_pydatetime()
        self.account.rebalance(targets, bars, when,
                               decided_at.tz_convert("UTC").tz_localize(None).to_pydatetime(),
                               bar=t, resize=resize)
        self.account.fund({s: float(d.opens[t, j]) for j, s in enumerate(d.symbols)},
                          {s: float(d.funding[t, j]) for j, s in enumerate(d.symbols)})
        self.account.accrue(self.closes())

    def closes(self) -> dict[str, float]:
        """Closes of the current bar per traded symbol."""
        return {s: float(self.data.closes[self.bar, j]) for j, s in enumerate(self.data.symbols)}

    def equity(self) -> float:
        """Account equity marked at the current bar's close."""
        return float(self.account.equity(self.closes()))

    # --- inside -------------------------------------------------------------------------

    def _observe(self) -> np.ndarray:
        d, t = self.data, self.bar
        closes = self.closes()
        equity = self.account.equity(closes)
        parts = [d.windows[t]]
        if self.settings.use_forecast:
            parts.append(d.forecast[t])
        parts.append([self.account.weight(s, closes) for s in d.symbols])
        parts.append([self.account.cash / equity if equity else 0.0])
        return np.concatenate(parts).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        return {"time": self.data.index[self.bar].isoformat(), "equity": self.equity()}

    def _reward(self, log_return: float) -> float:
        if self.settings.reward == "log_return":
            return log_return
        return self._differential_sharpe(log_return)

    def _differential_sharpe(self, r: float) -> float:
        """Moody and Saffell's differential Sharpe ratio of the step's log return."""
        a, b = self._sharpe
        eta = self.settings.sharpe_eta
        da, db = r - a, r * r - b
        variance = b - a * a
        value = (b * da - 0.5 * a * db) / variance ** 1.5 if variance > 1e-12 else 0.0
        self._sharpe = (a + eta * da, b + eta * db)
        return float(value)


def env_data(forecaster: Any, frames: Mapping[str, pd.DataFrame], symbols: tuple[str, ...],
             forecasts: Mapping[str, pd.DataFrame] | None, first_forecast_bar: int,
             timeframe: str) -> EnvData:
    """Precompute the arrays of ``EnvData`` from aligned frames and walk-forward forecasts.

    The observed window is ``forecaster``'s (a forecaster config entry): its raw features
    normalised by the window's first row, its derived features as they are.
    ``timeframe`` is the bars' (``data.timeframe``): borrow interest is charged per bar.
    """
    index = next(iter(frames.values())).index
    windows = build_windows(frames, forecaster)
    flat = np.full((len(index), windows.X.shape[1] * windows.X.shape[2]), np.nan, np.float32)
    flat[windows.end] = windows.X.reshape(len(windows), -1)

    def column(name: str) -> np.ndarray:
        return np.column_stack([frames[s][name].to_numpy("float64") for s in symbols])

    forecast = None
    if forecasts is not None:
        forecast = np.column_stack([
            forecasts[s]["pred_return"].reindex(index).to_numpy("float64") for s in symbols])
    funding = np.column_stack([
        frames[s][FUNDING].to_numpy("float64") if FUNDING in frames[s].columns
        else np.zeros(len(index)) for s in symbols])
    return EnvData(index, tuple(symbols), column("open"), column("high"), column("low"),
                   column("close"), funding, flat, forecast, forecaster.window_len,
                   first_forecast_bar, timeframe_ms(timeframe))


def broker_env(data: EnvData, settings: RLConfig, broker: BrokerConfig, start: Any,
               end: Any) -> TradingEnv:
    """The environment over ``start`` .. ``end`` (see ``bar_range``) with ``broker``'s
    cash, costs, leverage and borrow rate: the one place both ``make_env`` and the PPO
    agent build it."""
    lo, hi = bar_range(data, settings, start, end)
    return TradingEnv(data, settings, broker.cash, cost_model(broker), broker.leverage, lo,
                      hi, broker.borrow_rate)


def bar_range(data: EnvData, settings: RLConfig, start: Any, end: Any) -> tuple[int, int]:
    """Bar numbers (inclusive) of the episode from ``start`` to ``end`` (dates or bars).

    Defaults: the backtest's test period (first forecast bar .. last bar).

    Raises:
        ConfigError: The range holds fewer bars than a window, or starts before the first
            bar with a complete window (or a forecast, when observed).
    """
    index, w = data.index, data.window_len
    first = _bar(index, start, side="left") if start is not None else data.first_forecast_bar
    last = _bar(index, end, side="right") - 1 if end is not None else len(index) - 1
    if end is not None and _after_data(index, end):
        log.warning("rl: the episode end %s is after the data's last bar (%s); the episode "
                    "ends there", end, index[-1].isoformat())
        last = len(index) - 1
    defined = np.flatnonzero(~np.isnan(data.windows).any(axis=1))
    earliest = int(defined[0]) if len(defined) else len(index)
    if settings.use_forecast:
        known = np.flatnonzero(~np.isnan(data.forecast).any(axis=1))
        earliest = int(known[0]) if len(known) else len(index)
    first = max(first, earliest)
    bars = last - first + 1
    if bars < max(w, 2):
        what = ("bars with a forecast" if settings.use_forecast
                else "bars with a complete window")
        span = (f"{index[first]:%Y-%m-%d} .. {index[last]:%Y-%m-%d}" if 0 <= first <= last
                < len(index) else f"{start} .. {end}")
        raise ConfigError(f"rl: the episode range {span} holds {max(bars, 0)} {what}, fewer "
                          f"than model.window_len = {w} (and at least 2); widen the date range")
    return first, last


def _after_data(index: pd.DatetimeIndex, end: Any) -> bool:
    """Whether the episode bound ``end`` lies after the last bar of ``index``."""
    if isinstance(end, (int, np.integer)) and not isinstance(end, bool):
        return int(end) > len(index) - 1
    stamp = pd.Timestamp(end)  # a valid date: _bar has parsed it already
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp > index[-1]


def _bar(index: pd.DatetimeIndex, when: Any, side: str) -> int:
    if isinstance(when, (int, np.integer)) and not isinstance(when, bool):
        return int(when) + (1 if side == "right" else 0)
    try:
        stamp = pd.Timestamp(when)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"rl: the episode bound {when!r} is not a date such as 2021-01-31 "
                          "or a bar number") from exc
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if side == "right" and stamp == stamp.normalize():
        stamp += pd.Timedelta(days=1)  # a date as end includes that whole day
        return int(index.searchsorted(stamp, side="left"))
    return int(index.searchsorted(stamp, side=side))
