"""The backtrader broker of the engine: backtrader's event loop, the execution core's money.

Strategies hand target weights to ``order_targets`` at a bar's close; at the next bar's
open (``next``, which cerebro calls before the strategies see that bar) the broker asks the
``Account`` to fill them. Positions, cash and value that strategies and analyzers read come
from the account, so backtrader's own order book and commission schemes are never used.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import backtrader as bt

from engine.errors import ExecutionError
from engine.execution.account import Account, Bar


class CoreBroker(bt.BrokerBase):
    """A ``bt.BrokerBase`` that delegates every fill to an ``Account``.

    Params:
        account: The account to trade.
        fill: Fill decisions at the next open. False only records decisions (paper
            trading's replay of the decision bar). Defaults to True.
    """

    params = (("account", None), ("fill", True))

    def __init__(self):
        super().__init__()
        self.account: Account = self.p.account
        self.pending: tuple[dict[str, float], bool, dt.datetime] | None = None
        self.fills: list[dict[str, Any]] = []
        self.trades: list[dict[str, Any]] = []
        self._datas: dict[str, Any] = {}
        self._positions: dict[str, bt.Position] = {}
        self.startingcash = self.account.cash  # read by backtrader's writer info

    def start(self):
        super().start()
        self._datas = {d._name: d for d in self.cerebro.datas}
        self._positions = {name: bt.Position() for name in self._datas}
        self._sync_positions()

    # --- what strategies and analyzers read --------------------------------------------

    def getcash(self) -> float:
        return self.account.cash

    def getvalue(self, datas=None) -> float:
        account = self.account
        if not account.positions:
            return account.cash
        return account.equity({s: d.close[0] for s, d in self._datas.items()})

    def getposition(self, data) -> bt.Position:
        return self._positions[data._name]

    def get_notification(self):
        return None  # fills are reported through ``fills`` and ``trades``, not bt orders

    # --- decisions and fills ------------------------------------------------------------

    def order_targets(self, weights: dict[str, float], resize: bool,
                      decided_at: dt.datetime) -> None:
        """Record target weights decided at this close, to fill at the next open."""
        self.pending = (weights, resize, decided_at)

    def next(self):
        """At a new bar's open: fill what the previous close decided."""
        pending, self.pending = self.pending, None
        if pending is None or not self.p.fill:
            return
        weights, resize, decided_at = pending
        first = next(iter(self._datas.values()))
        when = first.datetime.datetime(0)
        bars = {s: Bar(d.open[0], d.high[0], d.low[0]) for s, d in self._datas.items()}
        fills, trades = self.account.rebalance(weights, bars, when, decided_at,
                                               bar=len(first) - 1, resize=resize)
        self.fills += fills
        self.trades += trades
        self._sync_positions()

    def _sync_positions(self) -> None:
        for symbol, position in self._positions.items():
            held = self.account.positions.get(symbol)
            position.size = held.size if held else 0.0
            position.price = held.entry_price if held else 0.0

    def buy(self, *args, **kwargs):
        raise ExecutionError("strategies of this engine give target weights (decide or "
                             "signal), not backtrader orders; see strategies/base.py")

    sell = submit = buy

    def cancel(self, order):
        return False
