"""The sweep kernel: one account trading one symbol, compiled with numba.

The kernel is the bar loop of ``Account.rebalance`` for a single symbol (order, sells
first, affordability, fill, position move; funding, borrow interest and equity at each
close); every rule it applies is a function of ``engine.execution.rules`` (or of the
cost model's class) compiled with numba, the very functions ``CostModel`` and ``Account``
call. So its results are the backtrader driver's (``engine.simulation.simulate``) to 1e-9;
``tests/engine/execution/test_kernel.py`` pins that for every strategy offering an array
form. A cost model with other cost rules gets its own compiled loop (``bar_loop``).

Decisions come as an ``(n, 3)`` array of target weights, one row per bar's close: the
weight wanted when flat, when long and when short (NaN = no decision, keep what is held).
The column is chosen by the position held at that close, which is how a strategy whose
rule depends on the held side (hysteresis) is expressed without a Python call per bar.
A decision at close t fills at open t + 1; the last bar's decision is never filled.

Prices are converted to arrays once (``prices``) and passed to every run, so a sweep pays
for pandas once, not once per trial. Portfolio mode (several symbols sharing one account)
is not covered: sweeps of portfolio configs run on backtrader.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
from numba import njit

from engine.execution import rules
from engine.execution.costs import CostModel
from engine.execution.records import FUNDING, Fill, RoundTrip

FLAT, LONG, SHORT = 0, 1, 2  # columns of the decision array

# The account rules, compiled (they do not depend on the cost model).
_order_units = njit(rules.order_units)
_buy_budget = njit(rules.buy_budget)
_affordable_scale = njit(rules.affordable_scale)
_move = njit(rules.move)
_round_trip_pnl = njit(rules.round_trip_pnl)
_coin_interest = njit(rules.coin_interest)
_cash_interest = njit(rules.cash_interest)
_funding = njit(rules.funding)
_LOOPS: dict[type, object] = {}  # cost model class -> its compiled bar loop
_DUST = rules.DUST


class Prices(NamedTuple):
    """The bars as contiguous float64 arrays, warm-up included; ``funding`` is a perpetual
    future's funding rate summed over each bar (None for a spot market)."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    funding: np.ndarray | None = None


def prices(frame: pd.DataFrame) -> Prices:
    """The open, high, low and close columns (and the funding rates, ``FUNDING``, of a
    perpetual future) of an OHLCV frame as ``Prices``."""
    funding = (np.ascontiguousarray(frame[FUNDING].to_numpy(dtype="float64"))
               if FUNDING in frame.columns else None)
    return Prices(*(np.ascontiguousarray(frame[c].to_numpy(dtype="float64"))
                    for c in ("open", "high", "low", "close")), funding)


class KernelRun(NamedTuple):
    """What the kernel produced; equity and position from the first traded bar on."""

    equity: np.ndarray  # account equity at each close from ``start``
    position: np.ndarray  # units held at each close from ``start``
    fees: float
    borrow: float  # borrow interest paid
    funding: float  # perpetual funding paid (negative: received)
    fill_bar: np.ndarray  # bar number of each fill (int)
    fill_delta: np.ndarray  # units bought (> 0) or sold (< 0)
    fill_price: np.ndarray
    fill_fee: np.ndarray
    trade_entry_bar: np.ndarray  # per round trip, the one open at the end last (int)
    trade_exit_bar: np.ndarray  # the closing fill's bar; the last bar for an open one
    trade_size: np.ndarray  # units closed, negative for a short
    trade_entry_price: np.ndarray
    trade_exit_price: np.ndarray
    trade_pnl: np.ndarray  # after fees
    trade_fees: np.ndarray
    open_at_end: bool  # whether the last round trip is still open after the last bar

    @property
    def fills(self) -> int:
        """Number of fills."""
        return len(self.fill_bar)

    @property
    def trades(self) -> int:
        """Round trips, the one still open at the end included."""
        return len(self.trade_pnl)

    @property
    def trade_bars(self) -> np.ndarray:
        """Bars each round trip was held."""
        return self.trade_exit_bar - self.trade_entry_bar

    def fill_records(self, index: pd.DatetimeIndex, symbol: str) -> list[Fill]:
        """The fills as ``Fill`` records, timed by ``index`` (the bars the kernel ran on)."""
        return [Fill(index[t], symbol, "buy" if d > 0 else "sell", abs(d), p, f, abs(d) * p,
                     index[t - 1])
                for t, d, p, f in zip(self.fill_bar.tolist(), self.fill_delta.tolist(),
                                      self.fill_price.tolist(), self.fill_fee.tolist(),
                                      strict=True)]

    def round_trips(self, index: pd.DatetimeIndex, symbol: str) -> list[RoundTrip]:
        """The round trips as ``RoundTrip`` records, timed by ``index``."""
        rows = zip(self.trade_entry_bar.tolist(), self.trade_exit_bar.tolist(),
                   self.trade_size.tolist(), self.trade_entry_price.tolist(),
                   self.trade_exit_price.tolist(), self.trade_pnl.tolist(),
                   self.trade_fees.tolist(), strict=True)
        last = self.trades - 1
        out = []
        for i, (entry, exit_, size, entry_price, exit_price, pnl, fees) in enumerate(rows):
            still_open = self.open_at_end and i == last
            cost = abs(size) * entry_price
            out.append(RoundTrip(symbol, "long" if size > 0 else "short", abs(size),
                                 index[entry], None if still_open else index[exit_],
                                 entry_price, exit_price, pnl, fees,
                                 pnl / cost if cost else None, exit_ - entry, still_open))
        return out


def bar_loop(costs: CostModel):
    """The bar loop compiled over the cost rules of ``costs``'s class (on first use, then
    kept): one loop per cost model class, the cost rules built in."""
    kind = type(costs)
    if kind not in _LOOPS:
        fill_price, fee = njit(kind.fill_rule), njit(kind.fee_rule)
        order = _order_over(fill_price, fee, njit(kind.unit_cost_rule),
                            njit(kind.liquidation_rule))
        _LOOPS[kind] = _loop_over(order, fill_price, fee)
    return _LOOPS[kind]


def _order_over(fill_price, fee, unit_cost, liquidation_value):
    """The compiled order step over these cost rules."""

    @njit
    def order(pending, held, cash, price, high, low, rates, leverage):
        """Units to trade at this open for the target ``pending`` (``order_sizes``), a
        purchase scaled down if it would overdraw (``Account._affordable``); 0: none."""
        value = cash if held == 0 else cash + liquidation_value(held, price, rates)
        delta = _order_units(pending, held, value, unit_cost(price, rates), False)
        if delta > 0:
            paid_price = fill_price(delta, price, high, low, rates)
            cost = 0.0
            cost += delta * paid_price + fee(delta, paid_price, rates)
            scale = _affordable_scale(cost, _buy_budget(cash, value, leverage))
            if scale != 1.0:
                delta = delta * scale if delta * scale > _DUST else 0.0
        return delta

    return order


@njit
def _record_trip(trades_i, trades_f, row, entry_bar, exit_bar, closed, entry_price, price,
                 entry_fees, exit_fee):
    """Write one round trip (``Account``'s ``RoundTrip`` fields) into row ``row``."""
    trades_i[0, row] = entry_bar
    trades_i[1, row] = exit_bar
    trades_f[0, row] = closed
    trades_f[1, row] = entry_price
    trades_f[2, row] = price
    trades_f[3, row] = _round_trip_pnl(closed, price, entry_price, entry_fees, exit_fee)
    trades_f[4, row] = entry_fees + exit_fee


def _loop_over(order, fill_price, fee):
    """The compiled bar loop over the order step and these cost rules."""

    @njit
    def loop(open_, high, low, close, funding, weights, start, cash, rates, leverage,
             borrow_rate):
        n = close.shape[0]
        equity = np.empty(n - start)
        position = np.empty(n - start)
        fills_i = np.empty(n, np.int64)
        fills_f = np.empty((3, n))  # delta, price, fee
        trades_i = np.empty((2, n + 1), np.int64)  # entry bar, exit bar
        trades_f = np.empty((5, n + 1))  # size, entry price, exit price, pnl, fees
        n_fills = n_trades = 0
        held = entry_price = entry_fees = fees = borrow = funded = 0.0
        opened_bar = -1
        pending = np.nan
        for t in range(n):
            delta = 0.0
            if not math.isnan(pending):
                delta = order(pending, held, cash, open_[t], high[t], low[t], rates, leverage)
            if delta != 0:
                price = fill_price(delta, open_[t], high[t], low[t], rates)
                paid = fee(delta, price, rates)
                cash += -delta * price - paid
                fees += paid
                fills_i[n_fills] = t
                fills_f[0, n_fills], fills_f[1, n_fills], fills_f[2, n_fills] = delta, price, paid
                n_fills += 1
                before, before_price = held, entry_price
                held, closed, closed_fees, exit_fee, entry_price, entry_fees = _move(
                    held, delta, price, paid, entry_price, entry_fees)
                if closed != 0:
                    _record_trip(trades_i, trades_f, n_trades, opened_bar, t, closed,
                                 before_price, price, closed_fees, exit_fee)
                    n_trades += 1
                    opened_bar = -1 if closed == before else opened_bar
                opened_bar = t if held != 0 and opened_bar < 0 else opened_bar
            if funding[t] != 0 and held != 0:  # Account.fund: marked at the bar's open
                paid_funding = _funding(held, open_[t], funding[t])
                cash -= paid_funding
                funded += paid_funding
            if borrow_rate != 0:  # Account.accrue: the bar's interest at its close
                interest = (_coin_interest(held, close[t], borrow_rate)
                            + _cash_interest(cash, borrow_rate))
                cash -= interest
                borrow += interest
            pending = np.nan
            if t >= start:
                weight = weights[t, FLAT if held == 0 else (LONG if held > 0 else SHORT)]
                # A decision on the side held, or to stay flat, trades nothing: drop it.
                if not math.isnan(weight) and not (weight == 0 and held == 0):
                    pending = weight
                equity[t - start] = cash if held == 0 else cash + held * close[t]
                position[t - start] = held
        if held != 0:  # Account.open_trades: the open position marked at the last close
            _record_trip(trades_i, trades_f, n_trades, opened_bar, n - 1, held, entry_price,
                         close[n - 1], entry_fees, 0.0)
            n_trades += 1
        return (equity, position, fees, borrow, funded, fills_i[:n_fills], fills_f[0, :n_fills],
                fills_f[1, :n_fills], fills_f[2, :n_fills], trades_i[0, :n_trades],
                trades_i[1, :n_trades], trades_f[0, :n_trades], trades_f[1, :n_trades],
                trades_f[2, :n_trades], trades_f[3, :n_trades], trades_f[4, :n_trades],
                held != 0)

    return loop


def run(bars: Prices, weights: np.ndarray, start: int, cash: float, costs: CostModel,
        leverage: float = 1.0, borrow_per_bar: float = 0.0) -> KernelRun:
    """Trade ``weights`` over ``bars``, as ``simulate`` does for one symbol.

    Args:
        bars: The bars (``prices(frame)``), warm-up included.
        weights: ``(len(bars.close), 3)`` decisions (see the module docstring).
        start: Index of the first traded bar.
        cash: Starting cash.
        costs: The cost model (its class's cost rules are compiled).
        leverage: ``broker.leverage``.
        borrow_per_bar: Borrow interest per bar (``account.borrow_per_bar``).
    """
    funding = bars.funding if bars.funding is not None else np.zeros(len(bars.close))
    return KernelRun(*bar_loop(costs)(
        bars.open, bars.high, bars.low, bars.close, funding,
        np.ascontiguousarray(weights, "float64"),
        int(start), float(cash), tuple(map(float, costs.rates)), float(leverage),
        float(borrow_per_bar)))


def warm_up(costs: CostModel | None = None) -> None:
    """Compile the kernel for ``costs``'s class (default ``CostModel``) before timing."""
    bars = np.ones(3)
    run(Prices(bars, bars, bars, bars), np.full((3, 3), np.nan), 0, 1.0,
        costs if costs is not None else CostModel())
