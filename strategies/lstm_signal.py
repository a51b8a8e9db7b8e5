"""Trade on a forecaster's predicted return (the LSTM's, or any configured forecaster's)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from engine.errors import InvalidKey
from strategies.base import TargetStrategy, decision_array, side_or_keep
from strategies.indicators import LSTMForecast, forecast_returns


def side(predicted: float, entry: float, exit_: float, short: bool, held: float) -> float:
    """The decision rule: the side wanted at a close given the predicted next-bar return.

    Long above ``entry``; with ``short``, short below ``-entry``; a long is closed below
    ``exit_`` and a short above ``-exit_``; otherwise (or without a forecast) NaN keeps
    what is held (hysteresis).

    Args:
        predicted: The forecast's predicted return (NaN when there is none).
        entry: Entry threshold.
        exit_: Exit threshold (<= entry).
        short: Also trade the short side.
        held: The side held: 1 long, -1 short, 0 flat.
    """
    if predicted > entry:
        return 1.0
    if short and predicted < -entry:
        return -1.0
    if held > 0 and predicted < exit_:
        return 0.0
    if held < 0 and predicted > -exit_:
        return 0.0
    return math.nan


class LSTMSignal(TargetStrategy):
    """Long when the predicted next-bar return exceeds ``entry``, out below ``exit``.

    With ``short`` on, it goes short when the prediction falls below ``-entry`` and covers
    above ``-exit``. Between the thresholds it keeps what it holds (hysteresis). In
    portfolio mode each symbol follows its own forecast, and the equity is split equally
    among the symbols held (see ``strategies.base``). The rule is ``side``.

    Params:
        entry: Predicted return that opens a long, e.g. 0.01 = +1%. Defaults to 0.0.
        exit: Predicted return below which a long is closed; must be <= entry.
            Defaults to 0.0.
        short: Also trade the mirror-image short side. Defaults to False.
        size: Fraction of equity in the market, in (0, 1]. Defaults to 1.0.
        forecaster: The name of the forecaster it trades on. Defaults to "" (the
            config's first forecaster).
    """

    name = "lstm_signal"
    needs_forecast = True
    params = (("entry", 0.0), ("exit", 0.0), ("short", False), ("size", 1.0),
              ("forecaster", ""))

    def __init__(self):
        tables = self.p.forecasts or {}
        self.forecast = {d._name: LSTMForecast(d, forecasts=tables.get(d._name))
                         for d in self.datas}

    def signal(self, data) -> float | None:
        return side_or_keep(side(self.forecast[data._name].pred_return[0], self.p.entry,
                                 self.p.exit, self.p.short, self.getposition(data).size))

    @classmethod
    def weights_array(cls, params: dict, frame: pd.DataFrame,
                      forecast: pd.DataFrame | None = None, symbol: str | None = None,
                      cache: dict | None = None) -> np.ndarray:
        """``side`` at every close of one symbol as the sweep kernel's decision array.

        ``forecast`` is the table of forecasts this strategy reads for the symbol;
        ``cache`` (a dict kept by the caller for one frame and forecast) keeps its
        predicted returns across calls.

        Returns:
            ``(len(frame), 3)`` target weights wanted at each close when flat / long /
            short, NaN = keep (see ``engine.execution.kernel``).
        """
        p = {**dict(cls.params._getitems()), **params}
        cache = {} if cache is None else cache
        key = ("pred_return", id(forecast))
        if key not in cache or cache[key][0] is not forecast:
            cache[key] = (forecast, forecast_returns(forecast, frame.index))  # keeps the id
        return decision_array(side, p["size"], len(frame), (cache[key][1],),
                              (float(p["entry"]), float(p["exit"]), bool(p["short"])))

    @classmethod
    def check_params(cls, params: dict) -> None:
        entry, exit_ = params.get("entry", 0.0), params.get("exit", 0.0)
        if exit_ > entry:
            raise InvalidKey(("exit",), exit_, f"must be <= entry ({entry})")
        size = params.get("size", 1.0)
        if not 0 < size <= 1:
            raise InvalidKey(("size",), size, "is not in (0, 1]")
