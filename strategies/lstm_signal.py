"""Trade on the LSTM forecaster's predicted return."""

from __future__ import annotations

import math

from engine.errors import InvalidKey
from strategies.base import TargetStrategy
from strategies.indicators import LSTMForecast


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
    """

    name = "lstm_signal"
    needs_forecast = True
    params = (("entry", 0.0), ("exit", 0.0), ("short", False), ("size", 1.0))

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
    def check_params(cls, params: dict) -> None:
        entry, exit_ = params.get("entry", 0.0), params.get("exit", 0.0)
        if exit_ > entry:
            raise InvalidKey(("exit",), exit_, f"must be <= entry ({entry})")
        size = params.get("size", 1.0)
        if not 0 < size <= 1:
            raise InvalidKey(("size",), size, "is not in (0, 1]")
