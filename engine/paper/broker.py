"""The paper broker: fills on a ``Book`` with the backtest's fill and sizing rules.

Fills use ``strategies.base.order_delta`` for sizing (the rule the backtest uses), pay
``broker.slippage`` against the trader and ``broker.commission`` on the traded value. At
a candle's open the slipped price is capped to that candle's high (buys) or low (sells),
as backtrader does, so a paper run filling at opens reproduces the backtest's fills.
"""

from __future__ import annotations

import math
from typing import Any

from engine.config import BrokerConfig
from engine.paper.state import Book
from strategies.base import order_delta


def execute(book: Book, target: float, price: float, broker: BrokerConfig, when: str,
            decided_at: str, high: float | None = None,
            low: float | None = None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Move ``book`` to ``target`` x equity at ``price``; returns (fill, closed trade).

    Args:
        book: Updated in place.
        target: Wanted position as a signed fraction of equity.
        price: The reference price (a candle's open, or the ticker).
        broker: Commission and slippage.
        when: Fill time (ISO).
        decided_at: Time of the candle whose close decided it (ISO).
        high: The candle's high, capping a slipped buy price. Defaults to None (no cap).
        low: The candle's low, flooring a slipped sell price. Defaults to None.
    """
    delta = order_delta(target, book.position, book.cash, price, broker.slippage,
                        broker.commission)
    if not delta or not math.isfinite(delta):
        return None, None
    if delta > 0:
        fill_price = price * (1 + broker.slippage)
        fill_price = min(fill_price, high) if high is not None else fill_price
    else:
        fill_price = price * (1 - broker.slippage)
        fill_price = max(fill_price, low) if low is not None else fill_price
    units = abs(delta)
    fee = units * fill_price * broker.commission
    book.cash += -delta * fill_price - fee
    book.fees += fee
    trade = _update_position(book, delta, fill_price, fee, when)
    fill = {"time": when, "symbol": book.symbol, "side": "buy" if delta > 0 else "sell",
            "size": units, "price": fill_price, "commission": fee, "value": units * fill_price,
            "decided_at": decided_at}
    return fill, trade


def _update_position(book: Book, delta: float, price: float, fee: float,
                     when: str) -> dict[str, Any] | None:
    """Apply ``delta`` units to the position; a closed round trip is returned."""
    old = book.position
    new = old + delta
    trade = None
    if old and (new == 0 or (new > 0) != (old > 0) or abs(new) < 1e-12):
        closed = old
        share = abs(closed) / abs(delta)  # part of this fill's fee that closes the trade
        pnl = closed * (price - book.entry_price) - book.entry_fees - fee * share
        trade = {"symbol": book.symbol, "opened_at": book.opened_at, "closed_at": when,
                 "side": "long" if closed > 0 else "short", "size": abs(closed),
                 "entry_price": book.entry_price, "exit_price": price, "pnl": pnl}
        book.realized += pnl
        fee -= fee * share
        old = 0.0
        new = 0.0 if abs(new) < 1e-12 else new
        book.entry_price, book.entry_fees, book.opened_at = 0.0, 0.0, None
    if new and (not old or (new > 0) == (old > 0)) and abs(new) > abs(old):
        added = abs(new) - abs(old)
        book.entry_price = (abs(old) * book.entry_price + added * price) / abs(new)
        book.entry_fees += fee
        book.opened_at = book.opened_at or when
    book.position = new
    return trade


def changes_position(book: Book, target: float) -> bool:
    """Whether ``target`` would trade at all (``order_delta``'s rule: not the side held)."""
    if book.position and target and (book.position > 0) == (target > 0):
        return False
    return bool(target or book.position)


def equity(book: Book, close: float) -> float:
    """Cash plus the position marked at ``close``."""
    return book.cash + book.position * close


def unrealized(book: Book, close: float) -> float:
    """P&L of the open position at ``close``, its entry fees included."""
    if not book.position:
        return 0.0
    return book.position * (close - book.entry_price) - book.entry_fees
