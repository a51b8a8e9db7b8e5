"""The account: one cash balance shared by every symbol, positions, fees and round trips.

A driver (the backtest's backtrader broker, the paper trader, the RL environment) hands
the account a bar's reference prices and target weights; the account sizes the orders
(``engine.execution.sizing``), fills them with the cost model, and returns what happened
as ``Fill`` and ``RoundTrip`` records. Its arithmetic is the rules of
``engine.execution.rules``, which the sweep kernel compiles for its own bar loop. Nothing
else in the engine moves money.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from engine.errors import ExecutionError
from engine.execution import rules
from engine.execution.costs import CostModel
from engine.execution.records import Fill, RoundTrip
from engine.execution.rules import DUST
from engine.execution.sizing import liquidation_equity, order_sizes
from engine.timeframes import timeframe_ms

if TYPE_CHECKING:  # for annotations only: the execution core does not depend on them
    import pandas as pd

    from engine.config import BrokerConfig


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
        borrow_per_bar: Interest charged at each close (``accrue``) on the value of
            borrowed coins and on negative cash, per bar (``rules.bar_rate`` of the yearly
            ``broker.borrow_rate``). Defaults to 0 (borrowing is free).
    """

    cash: float
    costs: CostModel = field(default_factory=CostModel)
    leverage: float = 1.0
    borrow_per_bar: float = 0.0
    positions: dict[str, Position] = field(default_factory=dict)
    fees: float = 0.0
    fees_by_symbol: dict[str, float] = field(default_factory=dict)
    borrow: float = 0.0  # borrow interest paid
    borrow_by_symbol: dict[str, float] = field(default_factory=dict)
    funding: float = 0.0  # perpetual funding paid (negative: received)
    funding_by_symbol: dict[str, float] = field(default_factory=dict)
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
                  resize: bool = False) -> tuple[list[Fill], list[RoundTrip]]:
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
        fills: list[Fill] = []
        trades: list[RoundTrip] = []
        sells = {s: d for s, d in orders.items() if d < 0}
        for symbol, delta in sells.items():
            self._fill(symbol, delta, bars[symbol], when, decided_at, bar, fills, trades)
        buys = self._affordable({s: d for s, d in orders.items() if d > 0}, bars, prices)
        for symbol, delta in buys.items():
            self._fill(symbol, delta, bars[symbol], when, decided_at, bar, fills, trades)
        return fills, trades

    def fund(self, prices: Mapping[str, float], rates: Mapping[str, float]) -> float:
        """Pay (or receive) a bar's perpetual funding; returns what was paid.

        Each position pays ``rules.funding`` at the rate summed over the bar's funding
        times (``rates``), marked at ``prices`` (the bar's open). Funding is a cost of its
        own (``funding``, ``funding_by_symbol``, negative when received) and a cash flow of
        its symbol. Drivers call it once per bar at the close, before ``accrue``.
        """
        paid = 0.0
        for symbol, position in self.positions.items():
            rate = rates.get(symbol, 0.0)
            if position.size and rate:
                amount = rules.funding(position.size, prices[symbol], rate)
                self.cash -= amount
                self.funding += amount
                self.funding_by_symbol[symbol] = self.funding_by_symbol.get(symbol, 0.0) + amount
                self.flows[symbol] = self.flows.get(symbol, 0.0) - amount
                paid += amount
        return paid

    def accrue(self, closes: Mapping[str, float]) -> float:
        """Charge one bar's borrow interest at ``closes``; returns what it cost.

        Each short pays ``rules.coin_interest`` on its coins marked at its close; negative
        cash pays ``rules.cash_interest``, shared among the long positions by value (the
        cash bought them), or among all positions by absolute value when none is long.
        Interest is a cost of its own (``borrow``, ``borrow_by_symbol``) and, like a fee, a
        cash flow of the symbol it is charged to. Drivers call it once per bar, after the
        fills at the open, before the close is recorded.
        """
        rate = self.borrow_per_bar
        if not rate:
            return 0.0
        before = self.borrow
        charges = {s: rules.coin_interest(p.size, closes[s], rate)
                   for s, p in self.positions.items() if p.size < 0}
        owed = rules.cash_interest(self.cash, rate)
        if owed:
            values = {s: p.size * closes[s] for s, p in self.positions.items() if p.size > 0}
            values = values or {s: abs(p.size) * closes[s] for s, p in self.positions.items()
                                if p.size}
            total = sum(values.values())
            for symbol, value in values.items():
                charges[symbol] = charges.get(symbol, 0.0) + owed * value / total
            if not values:  # nothing held (a ruined account): charged to no symbol
                self.cash -= owed
                self.borrow += owed
        for symbol, interest in charges.items():
            self.cash -= interest
            self.borrow += interest
            self.borrow_by_symbol[symbol] = self.borrow_by_symbol.get(symbol, 0.0) + interest
            self.flows[symbol] = self.flows.get(symbol, 0.0) - interest
        return self.borrow - before

    def open_trades(self, closes: Mapping[str, float], when: Any,
                    bar: int | None = None) -> list[RoundTrip]:
        """Open positions as round trips marked at ``closes`` (``open_at_end`` True)."""
        return [_round_trip(symbol, p.size, p.entry_price, closes[symbol], p.entry_fees, 0.0,
                            p.opened_at, when, _held(bar, p.opened_bar), True)
                for symbol, p in self.positions.items() if p.size]

    # --- state ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything that changes while trading, as JSON-ready data."""
        return {"cash": self.cash, "fees": self.fees, "fees_by_symbol": dict(self.fees_by_symbol),
                "borrow": self.borrow, "borrow_by_symbol": dict(self.borrow_by_symbol),
                "funding": self.funding, "funding_by_symbol": dict(self.funding_by_symbol),
                "flows": dict(self.flows),
                "positions": {s: asdict(p) for s, p in self.positions.items() if p.size}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], costs: CostModel, leverage: float = 1.0,
                  borrow_per_bar: float = 0.0) -> Account:
        """The account ``to_dict`` described, with these costs, leverage and interest (a
        state saved before borrow interest existed has paid none)."""
        return cls(cash=float(data["cash"]), costs=costs, leverage=leverage,
                   borrow_per_bar=borrow_per_bar,
                   positions={s: Position(**p) for s, p in data["positions"].items()},
                   fees=float(data["fees"]), fees_by_symbol=dict(data["fees_by_symbol"]),
                   borrow=float(data.get("borrow", 0.0)),
                   borrow_by_symbol=dict(data.get("borrow_by_symbol", {})),
                   funding=float(data.get("funding", 0.0)),
                   funding_by_symbol=dict(data.get("funding_by_symbol", {})),
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
        equity = (liquidation_equity(self.cash, self.sizes(), prices, self.costs)
                  if self.leverage > 1 else self.cash)  # read only with leverage above 1
        scale = rules.affordable_scale(cost, rules.buy_budget(self.cash, equity, self.leverage))
        if scale == 1.0:
            return buys
        return {s: d * scale for s, d in buys.items() if d * scale > DUST}

    def _fill(self, symbol: str, delta: float, bar: Bar, when: Any, decided_at: Any,
              number: int | None, fills: list[Fill], trades: list[RoundTrip]) -> None:
        price = self.costs.fill_price(delta, bar.open, bar.high, bar.low)
        fee = self.costs.fee(delta, price)
        self.cash += -delta * price - fee
        self.fees += fee
        self.fees_by_symbol[symbol] = self.fees_by_symbol.get(symbol, 0.0) + fee
        self.flows[symbol] = self.flows.get(symbol, 0.0) - delta * price - fee
        fills.append(Fill(when, symbol, "buy" if delta > 0 else "sell", abs(delta), price, fee,
                          abs(delta) * price, decided_at))
        trades.extend(self._move(symbol, delta, price, fee, when, number))

    def _move(self, symbol: str, delta: float, price: float, fee: float, when: Any,
              number: int | None) -> list[RoundTrip]:
        """Apply ``delta`` units to the position; returns the round trip it closed, if any."""
        position = self.positions.setdefault(symbol, Position())
        held, entry_price, opened_at, opened_bar = (position.size, position.entry_price,
                                                    position.opened_at, position.opened_bar)
        (new, closed, closed_fees, exit_fee, position.entry_price,
         position.entry_fees) = rules.move(held, delta, price, fee, entry_price,
                                           position.entry_fees)
        trips = []
        if closed:
            trips.append(_round_trip(symbol, closed, entry_price, price, closed_fees, exit_fee,
                                     opened_at, when, _held(number, opened_bar), False))
            if closed == held:  # all of it: a position that follows is a new round trip
                position.opened_at, position.opened_bar = None, None
        if new and position.opened_at is None:
            position.opened_at, position.opened_bar = when, number
        position.size = new
        if not new:
            del self.positions[symbol]
        return trips


def _held(number: int | None, opened_bar: int | None) -> int | None:
    """Bars from ``opened_bar`` to ``number`` (None when either is unknown)."""
    return number - opened_bar if number is not None and opened_bar is not None else None


def _round_trip(symbol: str, closed: float, entry_price: float, price: float,
                entry_fees: float, exit_fee: float, opened_at: Any, when: Any,
                bars_held: int | None, open_at_end: bool) -> RoundTrip:
    """The round trip of ``closed`` units entered at ``entry_price`` and left at ``price``."""
    pnl = rules.round_trip_pnl(closed, price, entry_price, entry_fees, exit_fee)
    cost = abs(closed) * entry_price
    return RoundTrip(symbol, "long" if closed > 0 else "short", abs(closed), opened_at,
                     None if open_at_end else when, entry_price, price, pnl,
                     entry_fees + exit_fee, pnl / cost if cost else None, bars_held,
                     open_at_end)


# --- accounts of a config's broker -------------------------------------------------------

def cost_model(broker: BrokerConfig) -> CostModel:
    """The configured commission and slippage."""
    return CostModel(broker.commission, broker.slippage)


def borrow_per_bar(broker: BrokerConfig, timeframe: str | None) -> float:
    """``broker.borrow_rate`` (yearly) as the interest of one bar of ``timeframe``.

    Raises:
        ExecutionError: A borrow rate is set and no timeframe is given.
    """
    yearly = getattr(broker, "borrow_rate", 0.0)
    if not yearly:
        return 0.0
    if timeframe is None:
        raise ExecutionError("broker.borrow_rate is charged per bar: give the bars' timeframe "
                             "(data.timeframe) to the account")
    return rules.bar_rate(yearly, timeframe_ms(timeframe))


def make_account(broker: BrokerConfig, timeframe: str | None = None) -> Account:
    """A fresh account with the configured cash, costs, leverage and borrow interest (per
    bar of ``timeframe``; needed when ``broker.borrow_rate`` is set)."""
    return Account(broker.cash, cost_model(broker), broker.leverage,
                   borrow_per_bar(broker, timeframe))


def restore_account(state: Mapping[str, Any], broker: BrokerConfig,
                    timeframe: str | None = None) -> Account:
    """The account ``Account.to_dict`` saved, with the configured costs, leverage and
    borrow interest (per bar of ``timeframe``)."""
    return Account.from_dict(state, cost_model(broker), broker.leverage,
                             borrow_per_bar(broker, timeframe))


def contributions(account: Account, position: pd.DataFrame,
                  closes: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Per symbol of ``account``: P&L brought (cash flows plus the open position at
    ``closes``), fees, borrow interest, funding and exposure (share of the recorded closes, the
    rows of ``position``, that held it)."""
    return {s: {"pnl": account.contribution(s, closes[s]),
                "fees": account.fees_by_symbol.get(s, 0.0),
                "borrow": account.borrow_by_symbol.get(s, 0.0),
                "funding": account.funding_by_symbol.get(s, 0.0),
                "exposure": float((position[s] != 0).mean()) if len(position) else 0.0}
            for s in position.columns}
