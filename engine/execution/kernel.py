"""The sweep kernel: one account trading one symbol, compiled with numba.

It applies the ``Account`` rules for a single symbol (``order_sizes``, ``CostModel``,
``Account.rebalance`` with its sells-first and affordability steps, dust) with the same
float formulas in the same order, so its equity matches the backtrader driver
(``engine.simulation.simulate``) to 1e-9; ``tests/engine/execution/test_kernel.py`` pins
that parity for every strategy with an array form. Any change to the account's arithmetic
must be made here too, or that test fails.

Decisions come as an ``(n, 3)`` array of target weights, one row per bar's close: the
weight wanted when flat, when long and when short (NaN = no decision, keep what is held).
The column is chosen by the position held at that close, which is how a strategy whose
rule depends on the held side (hysteresis) is expressed without a Python call per bar.
A decision at close t fills at open t + 1; the last bar's decision is never filled.

Portfolio mode (several symbols sharing one account) is not covered: sweeps of portfolio
configs run on backtrader.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from engine.execution.account import DUST
from engine.execution.costs import CostModel
from engine.execution.sizing import ROUNDING_MARGIN

FLAT, LONG, SHORT = 0, 1, 2  # columns of the decision array


class KernelRun(NamedTuple):
    """What the kernel produced from the first traded bar on."""

    equity: np.ndarray  # account equity at each close from ``start``
    position: np.ndarray  # units held at each close from ``start``
    fees: float
    fills: int
    trade_pnl: np.ndarray  # per round trip after fees; the one open at the end last
    trade_bars: np.ndarray  # bars each round trip was held

    @property
    def trades(self) -> int:
        """Round trips, the one still open at the end included."""
        return len(self.trade_pnl)


@njit(cache=True)
def _unit_cost(price, slippage, commission):
    return price * (1 + slippage) * (1 + commission)


@njit(cache=True)
def _order(weight, held, cash, price, slippage, commission):
    """``order_sizes`` for one symbol: units to trade (0 = no trade)."""
    equity = cash
    if held > 0:
        equity += held * price * (1 - slippage) * (1 - commission)
    elif held < 0:
        equity += held * _unit_cost(price, slippage, commission)
    if held != 0 and weight != 0 and (held > 0) == (weight > 0):
        return 0.0  # already on that side
    if weight == 0:
        return -held
    units = abs(weight) * equity / _unit_cost(price, slippage, commission) * (1 - ROUNDING_MARGIN)
    if not math.isfinite(units) or units <= 0:
        return 0.0
    return math.copysign(units, weight) - held


@njit(cache=True)
def _fill_price(delta, price, high, low, slippage):
    if delta > 0:
        return min(price * (1 + slippage), high)
    return max(price * (1 - slippage), low)


@njit(cache=True)
def _affordable(delta, held, cash, price, high, low, slippage, commission, leverage):
    """``Account._affordable`` for one buy: ``delta`` scaled down if it would overdraw."""
    fill = _fill_price(delta, price, high, low, slippage)
    cost = 0.0
    cost += delta * fill + abs(delta) * fill * commission
    budget = cash
    if leverage > 1:
        equity = cash
        if held > 0:
            equity += held * price * (1 - slippage) * (1 - commission)
        elif held < 0:
            equity += held * _unit_cost(price, slippage, commission)
        budget += (leverage - 1) * max(equity, 0.0)
    if cost <= budget:
        return delta
    scale = max(budget, 0.0) / cost * (1 - ROUNDING_MARGIN)
    return delta * scale if delta * scale > DUST else 0.0


@njit(cache=True)
def _move(held, delta, price, fee, t, entry_price, entry_fees, opened_bar, trade_pnl,
          trade_bars, closed):
    """``Account._move``: close (part of) the round trip, then open or add to a position.

    Returns the new (held, entry_price, entry_fees, opened_bar, closed); a closed round
    trip's P&L and bars held go into ``trade_pnl`` / ``trade_bars`` at ``closed``.
    """
    old = held
    new = held + delta
    if abs(new) < DUST:
        new = 0.0
    flipped = new == 0 or (new > 0) != (old > 0)
    if old != 0 and (flipped or abs(new) < abs(old)):
        part = old if flipped else old - new
        share = abs(part) / abs(delta)  # the part of this fill's fee that closes
        exit_fee = fee * share
        part_fees = entry_fees * (abs(part) / abs(held))
        trade_pnl[closed] = part * (price - entry_price) - part_fees - exit_fee
        trade_bars[closed] = t - opened_bar
        closed += 1
        remaining = (abs(old) - abs(part)) / abs(old)
        entry_fees *= remaining
        fee -= fee * share
        if remaining == 0:
            entry_price = 0.0
            opened_bar = -1
        old -= part
    if new != 0 and abs(new) > abs(old):
        added = abs(new) - abs(old)
        entry_price = (abs(old) * entry_price + added * price) / abs(new)
        entry_fees += fee
        if opened_bar < 0:
            opened_bar = t
    return new, entry_price, entry_fees, opened_bar, closed


@njit(cache=True)
def run_kernel(open_, high, low, close, weights, start, cash, commission, slippage,
               leverage):
    """Trade ``weights`` over the bars, as ``simulate`` does for one symbol.

    Args:
        open_, high, low, close: Price arrays of the bars, warm-up included.
        weights: ``(n, 3)`` target weights decided at each close when flat / long / short;
            NaN = no decision. Rows before ``start`` are ignored.
        start: Index of the first traded bar.
        cash: Starting cash.
        commission, slippage: The cost model's fractions.
        leverage: ``broker.leverage``.

    Returns:
        ``(equity, position, fees, fills, trade_pnl, trade_bars)``: equity and units held
        at each close from ``start``; each round trip's P&L after fees and bars held, the
        position still open at the end last (marked at the last close).
    """
    n = close.shape[0]
    equity = np.empty(n - start)
    position = np.empty(n - start)
    trade_pnl = np.empty(n + 1)
    trade_bars = np.empty(n + 1)
    closed = 0
    held = 0.0
    entry_price = 0.0
    entry_fees = 0.0
    opened_bar = -1
    fees = 0.0
    fills = 0
    pending = np.nan
    for t in range(n):
        if not math.isnan(pending):
            delta = _order(pending, held, cash, open_[t], slippage, commission)
            if delta > 0:
                delta = _affordable(delta, held, cash, open_[t], high[t], low[t], slippage,
                                    commission, leverage)
            if delta != 0:
                price = _fill_price(delta, open_[t], high[t], low[t], slippage)
                fee = abs(delta) * price * commission
                cash += -delta * price - fee
                fees += fee
                fills += 1
                held, entry_price, entry_fees, opened_bar, closed = _move(
                    held, delta, price, fee, t, entry_price, entry_fees, opened_bar,
                    trade_pnl, trade_bars, closed)
        pending = np.nan
        if t >= start:
            column = FLAT if held == 0 else (LONG if held > 0 else SHORT)
            weight = weights[t, column]
            # A decision on the side held, or to stay flat, trades nothing: drop it.
            if not math.isnan(weight) and not (weight == 0 and held == 0):
                pending = weight
            equity[t - start] = cash if held == 0 else cash + held * close[t]
            position[t - start] = held
    if held != 0:  # Account.open_trades: the open position marked at the last close
        trade_pnl[closed] = held * (close[n - 1] - entry_price) - entry_fees - 0.0
        trade_bars[closed] = n - 1 - opened_bar
        closed += 1
    return equity, position, fees, fills, trade_pnl[:closed], trade_bars[:closed]


def run(frame, weights: np.ndarray, start: int, cash: float, costs: CostModel,
        leverage: float = 1.0) -> KernelRun:
    """Run the kernel over an OHLCV frame (columns open, high, low, close).

    Args:
        frame: The bars, warm-up included.
        weights: ``(len(frame), 3)`` decisions (see the module docstring).
        start: Index of the first traded bar.
        cash: Starting cash.
        costs: Commission and slippage.
        leverage: ``broker.leverage``.
    """
    prices = [np.ascontiguousarray(frame[c].to_numpy(dtype="float64"))
              for c in ("open", "high", "low", "close")]
    equity, position, fees, fills, pnl, bars = run_kernel(
        *prices, np.ascontiguousarray(weights, "float64"), int(start), float(cash),
        float(costs.commission), float(costs.slippage), float(leverage))
    return KernelRun(equity, position, float(fees), int(fills), pnl, bars)
