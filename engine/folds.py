"""The walk-forward fold plan: which bars each fold trains on and forecasts from.

Bars are numbered 0 .. N-1. Fold k is fit at the close of bar ``e_k - 1`` on windows
whose targets are all <= bar ``e_k - 1`` (``e_0 = train_bars``, or the bars up to
``train_until``; ``e_k+1 = e_k + retrain_every``). It then forecasts from the windows
ending at bars ``e_k - 1`` .. ``e_k+1 - 2``: each forecast made at bar t is for the close
of bar t + 1 and uses bars <= t only. The last fold also forecasts from the last bar, for
the first bar after the data (what a live trader would act on).

Rolling windows train on the last ``e_0`` bars only; expanding windows on all bars so far.
The plan is the same for every forecaster of a run, and it is what paper trading, the RL
agent and sweeps follow too.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from engine.config import WalkForwardConfig
from engine.errors import ModelError


@dataclass(frozen=True)
class FoldPlan:
    """Which bars one fold trains on and forecasts from (bar numbers, end exclusive)."""

    index: int
    train_start: int  # first bar of the training data
    train_end: int  # bars < train_end are known when this fold is fit
    forecast_start: int  # first bar whose window this fold forecasts from (= train_end - 1)
    forecast_end: int  # bars >= forecast_end belong to the next fold


def first_train_end(index: pd.DatetimeIndex, wf: WalkForwardConfig, window_len: int) -> int:
    """``e_0``: the number of bars known to the first fit.

    Raises:
        ModelError: The first fit has too few bars, or leaves none to forecast.
    """
    if wf.train_until is not None:
        cut = pd.Timestamp(wf.train_until, tz="UTC") + pd.Timedelta(days=1)
        end = int(index.searchsorted(cut))
        setting = f"walkforward.train_until = {wf.train_until}"
    else:
        end = int(wf.train_bars)
        setting = f"walkforward.train_bars = {wf.train_bars}"
    if end < window_len + 2:
        raise ModelError(f"{setting} gives {end} training bars; at least model.window_len + 2 "
                         f"= {window_len + 2} are needed")
    if end >= len(index):
        raise ModelError(f"{setting} leaves no bars to forecast: the data has {len(index)} bars "
                         f"({index[0]:%Y-%m-%d} .. {index[-1]:%Y-%m-%d}); train on fewer bars or "
                         "load more data")
    return end


def plan_folds(n_bars: int, first_end: int, wf: WalkForwardConfig) -> list[FoldPlan]:
    """The fold schedule over ``n_bars`` bars (see the module docstring)."""
    plans, end, k = [], first_end, 0
    while end - 1 < n_bars:
        start = max(0, end - first_end) if wf.window == "rolling" else 0
        nxt = end + wf.retrain_every
        plans.append(FoldPlan(k, start, end, end - 1, min(nxt - 1, n_bars)))
        end, k = nxt, k + 1
    return plans


def fold_plan(index: pd.DatetimeIndex, wf: WalkForwardConfig,
              window_len: int) -> list[FoldPlan]:
    """The folds over ``index`` for forecasters whose longest window is ``window_len``."""
    return plan_folds(len(index), first_train_end(index, wf, window_len), wf)
