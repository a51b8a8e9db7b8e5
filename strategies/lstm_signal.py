"""Trade on a forecaster's predicted return (the LSTM's, or any configured forecaster's)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from engine.errors import InvalidKey
from strategies.base import TargetStrategy
from strategies.indicators import LSTMForecast, forecast_returns


class LSTMSignal(TargetStrategy):
    """Long when the predicted next-bar return exceeds ``entry``, out below ``exit``.

    With ``short`` on, it goes short when the prediction falls below ``-entry`` and covers
    above ``-exit``. Between the thresholds it keeps what it holds (hysteresis). In
    portfolio mode each symbol follows its own forecast, and the equity is split equally
    among the symbols held (see ``strategies.base``).

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
        predicted = self.forecast[data._name].pred_return[0]
        if math.isnan(predicted):
            return None
        if predicted > self.p.entry:
            return 1.0
        if self.p.short and predicted < -self.p.entry:
            return -1.0
        held = self.getposition(data).size
        if held > 0 and predicted < self.p.exit:
            return 0.0
        if held < 0 and predicted > -self.p.exit:
            return 0.0
        return None

    @classmethod
    def weights_array(cls, params: dict, frame: pd.DataFrame,
                      forecast: pd.DataFrame | None = None, symbol: str | None = None,
                      cache: dict | None = None) -> np.ndarray:
        """The decisions of ``signal()`` for one symbol as the sweep kernel's array.

        Returns:
            ``(len(frame), 3)`` target weights wanted at each close when flat / long /
            short, NaN = keep (see ``engine.execution.kernel``).
        """
        p = {**dict(cls.params._getitems()), **params}
        pred = forecast_returns(forecast, frame.index)
        entry, exit_, size = p["entry"], p["exit"], p["size"]
        enter_long = pred > entry
        enter_short = (pred < -entry) if p["short"] else np.zeros(len(pred), bool)
        enter = np.where(enter_long, size * 1.0, np.where(enter_short, size * -1.0, np.nan))
        out = np.empty((len(pred), 3))
        out[:, 0] = enter
        out[:, 1] = np.where(np.isnan(enter) & (pred < exit_), 0.0, enter)
        out[:, 2] = np.where(np.isnan(enter) & (pred > -exit_), 0.0, enter)
        return out

    @classmethod
    def check_params(cls, params: dict) -> None:
        entry, exit_ = params.get("entry", 0.0), params.get("exit", 0.0)
        if exit_ > entry:
            raise InvalidKey(("exit",), exit_, f"must be <= entry ({entry})")
        size = params.get("size", 1.0)
        if not 0 < size <= 1:
            raise InvalidKey(("size",), size, "is not in (0, 1]")
