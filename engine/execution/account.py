"""The account: one cash balance shared by every symbol, positions, fees and round trips.

A driver (the backtest's backtrader broker, the paper trader, the RL environment, the
sweep kernel) hands the account a bar's reference prices and target weights; the account
sizes the orders (``engine.execution.sizing``), fills them with the cost model, and returns
what happened. Nothing else in the engine moves money.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from engine.errors import ExecutionError
from engine.execution.costs import CostModel
from engine.execution.sizing import ROUNDING_MARGIN, liquidation_equity, order_sizes

#: Positions smaller than this (in units) are treated as closed: rounding dust.
DUST = 1e-12


class Bar(NamedTuple):
    """The prices a fill may use: the reference (an open, or a ticker) and the bar's range.

    ``high`` and ``low`` cap a slipped fill price; None (a ticker fill) caps nothing.
    """

    open: float
    high: float | None = None
    low: float | None = None


@dataclass
class Position:
    """An open position in one symbol and the round trip it belongs to."""

    size: float = 0.0  # units; negative = short
    entry_price: float = 0.0  # average fill price of the open position
    entry_fees: float = 0.0  # fees paid opening it, charged to the round trip
    opened_at: Any = None  # time of the first fill of the round trip
    opened_bar: int | None = None  # bar number of that fill


@dataclass
class Account:
    """Cash, positions, fees and per-symbol cash flows of one trading account.

    Args:
        cash: Starting cash in the quote currency.
        costs: Commission and slippage.
        leverage: Largest sum of |target weights|, and how far buys may take the cash
            below zero (``-(leverage - 1) x equity``). Defaults to 1 (no borrowing).
    """

    cash: float
    costs: CostModel = field(default_factory=CostModel)
    leverage: float = 1.0
    positions: dict[str, Position] = field(default_factory=dict)
    fees: float = 0.0
    fees_by_symbol: dict[str, float] = field(default_factory=dict)
    flows: dict[str, float] = field(default_factory=dict)  # cash in minus out, per symbol

    # --- reading -----------------------------------------------------------------------

    def size(self, symbol: str) -> float:
        """Units held of ``symbol`` (0 when flat)."""
        position = self.positions.get(symbol)
        return position.size if position else 0.0

    def sizes(self) -> dict[str, float]:
        """Units held per symbol with an open position."""
        return {s: p.size for s, p in self.positions.items() if p.size}

    def equity(self, closes: Mapping[str, float]) -> float:
        """Cash plus every position marked at ``closes``."""
        value = self.cash
        for symbol, position in self.positions.items():
            if position.size:
                value += position.size * closes[symbol]
        return value

    def weight(self, symbol: str, closes: Mapping[str, float]) -> float:
        """The position in ``symbol`` as a signed fraction of equity at ``closes``."""
        equity = self.equity(closes)
        return self.size(symbol) * closes[symbol] / equity if equity else 0.0

    def contribution(self, symbol: str, close: float) -> float:
        """P&L that ``symbol`` brought so far: its cash flows plus its position at ``close``."""
        return self.flows.get(symbol, 0.0) + self.size(symbol) * close

    def changes(self, targets: Mapping[str, float], resize: bool = False) -> bool:
        """Whether ``rebalance(targets, ..., resize=resize)`` would trade at all."""
        for symbol, weight in targets.items():
            size = self.size(symbol)
            if resize and (weight or size):
                return True
            if not (size and weight and (size > 0) == (weight > 0)) and (size or weight):
                return True
        return False

    # --- trading -----------------------------------------------------------------------

    def rebalance(self, targets: Mapping[str, float], bars: Mapping[str, Bar], when: Any,
                  decided_at: Any = None, bar: int | None = None,
                  resize: bool = False) -> tuple[list[dict], list[dict]]:
        """Move the account to ``targets`` at ``bars``; returns (fills, closed trades).

        Sales go first so that their cash pays for the purchases; purchases that would take
        the cash below what ``leverage`` allows are scaled down together.

        Args:
            targets: Wanted weight of equity per symbol; symbols left out keep their position.
            bars: Reference price and range per symbol (needed for every target).
            when: Fill time, recorded with each fill and trade.
            decided_at: Time of the bar whose close decided the targets.
            bar: Bar number of the fill, for the bars a round trip was held.
            resize: Also resize positions already on the target's side.

        Raises:
            ExecutionError: A target names a symbol without a bar, or the weights add up
                to more than ``leverage``.
        """
        self._check(targets, bars)
        prices = {s: b.open for s, b in bars.items()}
        orders = order_sizes(targets, self.sizes(), self.cash, prices, self.costs, resize)
        fills: list[dict] = []
        trades: list[dict] = []
        sells = {s: d for s, d in orders.items() if d < 0}
        for symbol, delta in sells.items():
            self._fill(symbol, delta, bars[symbol], when, decided_at, bar, fills, trades)
        buys = self._affordable({s: d for s, d in orders.items() if d > 0}, bars, prices)
        for symbol, delta in buys.items():
            self._fill(symbol, delta, bars[symbol], when, decided_at, bar, fills, trades)
        return fills, trades

    def open_trades(self, closes: Mapping[str, float], when: Any,
                    bar: int | None = None) -> list[dict]:
        """Open positions as round trips marked at ``closes`` (``open_at_end`` True)."""
        rows = []
        for symbol, position in self.positions.items():
            if position.size:
                rows.append(self._trade(symbol, position, position.size, closes[symbol],
                                        0.0, when, bar, open_at_end=True))
        return rows

    # --- state ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything that changes while trading, as JSON-ready data."""
        return {"cash": self.cash, "fees": self.fees, "fees_by_symbol": dict(self.fees_by_symbol),
                "flows": dict(self.flows),
                "positions": {s: asdict(p) for s, p in self.positions.items() if p.size}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], costs: CostModel,
                  leverage: float = 1.0) -> Account:
        """The account ``to_dict`` described, with these costs and leverage."""
        return cls(cash=float(data["cash"]), costs=costs, leverage=leverage,
                   positions={s: Position(**p) for s, p in data["positions"].items()},
                   fees=float(data["fees"]), fees_by_symbol=dict(data["fees_by_symbol"]),
                   flows=dict(data["flows"]))

    # --- inside ----------------------------------------------------------------------------

    def _check(self, targets: Mapping[str, float], bars: Mapping[str, Bar]) -> None:
        unpriced = [s for s in self.sizes() if s not in bars]
        if unpriced:
            raise ExecutionError(f"no price was given for {', '.join(unpriced)}, held in the "
                                 "account; a rebalance needs a bar for every symbol held")
        for symbol, weight in targets.items():
            if symbol not in bars:
                raise ExecutionError(f"a target weight was given for {symbol}, which is not "
                                     f"traded here (traded: {', '.join(bars)}); give weights "
                                     "for the traded symbols only")
            if not math.isfinite(weight):
                raise ExecutionError(f"the target weight for {symbol} is {weight}; a strategy "
                                     "must give finite weights")
        total = sum(abs(w) for w in targets.values())
        if total > self.leverage + 1e-9:
            raise ExecutionError(f"target weights add up to {total:g}, more than "
                                 f"broker.leverage = {self.leverage:g}; lower the weights or "
                                 "raise broker.leverage")

    def _affordable(self, buys: dict[str, float], bars: Mapping[str, Bar],
                    prices: Mapping[str, float]) -> dict[str, float]:
        """``buys`` scaled down together if they would overdraw what leverage allows."""
        if not buys:
            return buys
        cost = 0.0
        for symbol, delta in buys.items():
            price = self.costs.fill_price(delta, prices[symbol], bars[symbol].high,
                                          bars[symbol].low)
            cost += delta * price + self.costs.fee(delta, price)
        budget = self.cash
        if self.leverage > 1:
            equity = liquidation_equity(self.cash, self.sizes(), prices, self.costs)
            budget += (self.leverage - 1) * max(equity, 0.0)
        if cost <= budget:
            return buys
        scale = max(budget, 0.0) / cost * (1 - ROUNDING_MARGIN)
        return {s: d * scale for s, d in buys.items() if d * scale > DUST}

    def _fill(self, symbol: str, delta: float, bar: Bar, when: Any, decided_at: Any,
              number: int | None, fills: list[dict], trades: list[dict]) -> None:
        price = self.costs.fill_price(delta, bar.open, bar.high, bar.low)
        fee = self.costs.fee(delta, price)
        self.cash += -delta * price - fee
        self.fees += fee
        self.fees_by_symbol[symbol] = self.fees_by_symbol.get(symbol, 0.0) + fee
        self.flows[symbol] = self.flows.get(symbol, 0.0) - delta * price - fee
        fills.append({"time": when, "symbol": symbol, "side": "buy" if delta > 0 else "sell",
                      "size": abs(delta), "price": price, "commission": fee,
                      "value": abs(delta) * price, "decided_at": decided_at})
        trades.extend(self._move(symbol, delta, price, fee, when, number))

    def _move(self, symbol: str, delta: float, price: float, fee: float, when: Any,
              number: int | None) -> list[dict]:
        """Apply ``delta`` units to the position; returns the round trips it closed."""
        position = self.positions.setdefault(symbol, Position())
        old, new = position.size, position.size + delta
        closed: list[dict] = []
        if abs(new) < DUST:
            new = 0.0
        reduced = old and (new == 0 or (new > 0) != (old > 0) or abs(new) < abs(old))
        if reduced:
            part = old if (new == 0 or (new > 0) != (old > 0)) else old - new
            share = abs(part) / abs(delta)  # the part of this fill's fee that closes
            closed.append(self._trade(symbol, position, part, price, fee * share, when,
                                      number, open_at_end=False))
            remaining = (abs(old) - abs(part)) / abs(old)
            position.entry_fees *= remaining
            fee -= fee * share
            if remaining == 0:
                position.entry_price, position.opened_at, position.opened_bar = 0.0, None, None
            old -= part
        if new and abs(new) > abs(old):  # opened or added to, on new's side
            added = abs(new) - abs(old)
            position.entry_price = (abs(old) * position.entry_price + added * price) / abs(new)
            position.entry_fees += fee
            if position.opened_at is None:
                position.opened_at, position.opened_bar = when, number
        position.size = new
        if not new:
            del self.positions[symbol]
        return closed

    @staticmethod
    def _trade(symbol: str, position: Position, closed: float, price: float, exit_fee: float,
               when: Any, number: int | None, open_at_end: bool) -> dict[str, Any]:
        """The round trip record for ``closed`` units of ``position`` leaving at ``price``."""
        share = abs(closed) / abs(position.size) if position.size else 1.0
        entry_fees = position.entry_fees * share
        pnl = closed * (price - position.entry_price) - entry_fees - exit_fee
        cost = abs(closed) * position.entry_price
        held = (number - position.opened_bar
                if number is not None and position.opened_bar is not None else None)
        return {"symbol": symbol, "side": "long" if closed > 0 else "short",
                "size": abs(closed), "entry_time": position.opened_at,
                "exit_time": None if open_at_end else when,
                "entry_price": position.entry_price, "exit_price": price, "pnl": pnl,
                "fees": entry_fees + exit_fee, "return": pnl / cost if cost else None,
                "bars_held": held, "open_at_end": open_at_end}
