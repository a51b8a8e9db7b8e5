"""The base class every strategy derives from, and the broker costs they all share.

A strategy says *what exposure it wants*; the base class turns that into orders. This keeps
every strategy free of sizing and fill mechanics and makes lookahead impossible by
construction: ``target()`` runs at a bar's close and sees bars up to that close only; the
order it implies is sized and placed at the next bar's open and fills at that open.
"""

from __future__ import annotations

import math

import backtrader as bt


class CryptoCommission(bt.CommInfoBase):
    """Percentage fee per fill, fractional position sizes (crypto trades in fractions)."""

    params = (
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_PERC),
        ("percabs", True),
    )

    def getsize(self, price: float, cash: float) -> float:
        return self.p.leverage * (cash / price)


class TargetStrategy(bt.Strategy):
    """Base class: subclasses implement ``target()``; the base trades it at the next open.

    Subclasses set a class attribute ``name`` (the name configs use) and may declare
    backtrader ``params`` with defaults (their types are enforced when a config is loaded)
    and a ``check_params`` classmethod for ranges and cross-field rules.

    Params:
        trade_start: Datetime of the first bar whose ``target()`` is acted on; earlier bars
            only warm up indicators. Defaults to None (trade from the first bar).
        forecasts: Forecast table handed to strategies whose ``needs_forecast`` is True.
    """

    name: str = ""
    needs_forecast = False
    params = (("trade_start", None), ("forecasts", None))

    def __init__(self):
        self._pending: float | None = None

    def target(self) -> float | None:
        """The wanted position as a signed fraction of equity, or None to keep it.

        1 is all equity long, 0 flat, -1 all equity short. Called at each bar's close. A
        target on the side already held keeps the position as it is: positions are opened,
        closed and reversed, never resized bar by bar (which would pay fees for drift).
        """
        raise NotImplementedError

    @classmethod
    def check_params(cls, params: dict) -> None:
        """Raise ``engine.errors.InvalidKey`` for a bad parameter. Default: no rules."""

    @property
    def trading(self) -> bool:
        """Whether the current bar is inside the traded period."""
        start = self.p.trade_start
        return start is None or self.data.datetime.datetime(0) >= start

    @property
    def exposure(self) -> float:
        """The current position as a signed fraction of equity at the last close."""
        value = self.broker.getvalue()
        return self.position.size * self.data.close[0] / value if value else 0.0

    @property
    def pending_target(self) -> float | None:
        """The target decided at the last bar's close, not yet traded (None: nothing)."""
        return self._pending

    def next(self):
        if self.trading:
            self._pending = self.target()

    def next_open(self):
        wanted, self._pending = self._pending, None
        if wanted is not None:
            self.rebalance(wanted)

    def rebalance(self, wanted: float) -> None:
        """Place the order that moves the position to ``wanted`` x equity at this open."""
        size = self.position.size
        delta = order_delta(wanted, size, self.broker.getcash(), self.data.open[0],
                            self.broker.p.slip_perc,
                            self.broker.getcommissioninfo(self.data).p.commission)
        if wanted == 0 and size:
            self.close()  # exactly the position, whatever rounding says
        elif delta:
            (self.buy if delta > 0 else self.sell)(size=abs(delta))


def order_delta(wanted: float, size: float, cash: float, price: float, slippage: float,
                commission: float) -> float:
    """Units to buy (> 0) or sell (< 0) at ``price`` to hold ``wanted`` x equity; 0 = none.

    The one sizing rule of the engine, used by backtests and the paper broker alike:
    a target on the side already held keeps the position; otherwise the position is
    closed (if any) and the new one sized so that price, slippage and fee together use
    ``|wanted|`` x the cash left after closing.
    """
    if size and wanted and (size > 0) == (wanted > 0):
        return 0.0  # already on that side
    if wanted == 0:
        return -size
    # Cash once the current position (on the other side, if any) is closed at this price,
    # after its slippage and fee; a short's sale proceeds are already in the cash.
    free = cash
    if size > 0:
        free += size * price * (1 - slippage) * (1 - commission)
    elif size < 0:
        free -= -size * price * (1 + slippage) * (1 + commission)
    units = abs(wanted) * free / (price * (1 + slippage) * (1 + commission)) * (1 - 1e-9)
    if not math.isfinite(units) or units <= 0:
        return 0.0
    return math.copysign(units, wanted) - size
