"""The money rules, once: plain functions of floats.

``CostModel`` and ``Account`` call these functions; the sweep kernel
(``engine.execution.kernel``) compiles these very functions with numba and keeps only its
bar loop. So a backtest, paper trading, the RL environment and the fast path cannot drift
apart: there is one definition of each rule. The functions take and return floats (and
tuples of floats) only, call no other function, and branch only on numbers, which is what
lets numba compile them unchanged.

Two kinds of rule:

- **Cost rules** (``fill_price``, ``fee``, ``unit_cost``, ``liquidation_value``) take the
  cost model's numbers as ``rates``, a tuple of floats; for ``CostModel`` that is
  ``(commission, slippage)``. A cost model with another fee rule (tiered, maker/taker)
  is a ``CostModel`` subclass that brings its own cost rules over its own ``rates``; the
  account and the kernel both use whatever rules the cost model names.
- **Account rules** (``order_units``, ``buy_budget``, ``affordable_scale``, ``move``,
  ``round_trip_pnl``) are the same for every cost model: they take what the cost rules
  computed.

- **Carry rules** (``bar_rate``, ``coin_interest``, ``cash_interest``, ``funding``): what
  holding a position costs while time passes. Borrow interest is simple interest per bar
  at a yearly rate over a 365-day year, charged at each bar's close on the value of the
  coins borrowed for a short (marked at that close) and on negative cash. A perpetual
  future's funding is the position's notional times the funding rate of each funding time
  in the bar, marked at the bar's open.
"""

from __future__ import annotations

import math

#: Fraction of a sized order kept back against floating-point rounding.
ROUNDING_MARGIN = 1e-9
#: Positions smaller than this (in units) are treated as closed: rounding dust.
DUST = 1e-12
#: Milliseconds in the year of a yearly interest rate: 365 days (crypto trades every day).
YEAR_MS = 365 * 86_400_000


# --- cost rules: CostModel's flat commission and slippage; rates = (commission, slippage) --

def fill_price(delta: float, price: float, high: float, low: float,
               rates: tuple[float, ...]) -> float:
    """The price a fill of ``delta`` units gets at reference ``price``.

    A buy pays ``price * (1 + slippage)``, at most the bar's ``high``; a sell gets
    ``price * (1 - slippage)``, at least the bar's ``low`` (a fill cannot happen at a price
    the bar never traded). A fill without a bar (a ticker) passes ``high = inf`` and
    ``low = -inf``, which cap nothing.
    """
    if delta > 0:
        return min(price * (1 + rates[1]), high)
    return max(price * (1 - rates[1]), low)


def fee(units: float, price: float, rates: tuple[float, ...]) -> float:
    """Commission on ``units`` traded at ``price``."""
    return abs(units) * price * rates[0]


def unit_cost(price: float, rates: tuple[float, ...]) -> float:
    """Cash one unit bought at reference ``price`` takes, slippage and fee included
    (uncapped): what sizing divides equity by."""
    return price * (1 + rates[1]) * (1 + rates[0])


def liquidation_value(size: float, price: float, rates: tuple[float, ...]) -> float:
    """Cash that closing ``size`` units at reference ``price`` would bring after slippage
    and fee (negative for a short: buying it back costs ``unit_cost`` a unit)."""
    if size > 0:
        return size * price * (1 - rates[1]) * (1 - rates[0])
    return size * (price * (1 + rates[1]) * (1 + rates[0]))


# --- account rules: the same for every cost model -----------------------------------------

def order_units(weight: float, held: float, equity: float, cost_of_unit: float,
                resize: bool) -> float:
    """Units to buy (> 0) or sell (< 0) to move ``held`` units to ``weight`` of ``equity``.

    0 means no trade: a target on the side already held keeps the position unless
    ``resize``; a weight of 0 closes what is held. Otherwise the position becomes
    ``|weight| x equity`` worth of units at ``cost_of_unit`` each (``unit_cost``), less
    the rounding margin.
    """
    if held != 0 and weight != 0 and (held > 0) == (weight > 0) and not resize:
        return 0.0  # already on that side
    if weight == 0:
        return -held if held != 0 else 0.0
    units = abs(weight) * equity / cost_of_unit * (1 - ROUNDING_MARGIN)
    if not math.isfinite(units) or units <= 0:
        return 0.0
    return math.copysign(units, weight) - held


def buy_budget(cash: float, equity: float, leverage: float) -> float:
    """Cash that purchases may spend: the cash, and with ``leverage`` above 1 down to
    ``-(leverage - 1) x equity`` (``equity`` after closing every position)."""
    if leverage > 1:
        return cash + (leverage - 1) * max(equity, 0.0)
    return cash


def affordable_scale(cost: float, budget: float) -> float:
    """Factor that purchases costing ``cost`` (fills and fees) are scaled down by to fit
    ``budget``: 1 when they fit, else a little under ``budget / cost`` (never negative)."""
    if cost <= budget:
        return 1.0
    return max(budget, 0.0) / cost * (1 - ROUNDING_MARGIN)


def move(held: float, delta: float, price: float, paid: float, entry_price: float,
         entry_fees: float) -> tuple[float, float, float, float, float, float]:
    """Apply a fill of ``delta`` units at ``price`` (fee ``paid``) to a position.

    A fill that reduces, closes or reverses the position first closes that part of the
    round trip (with its share of the entry fees and of this fill's fee); what is left of
    the fill opens or adds to a position on its side at the average entry price.

    Args:
        held: Units held before the fill (negative = short).
        delta: Units filled.
        price: Fill price.
        paid: Fee of the fill.
        entry_price: Average entry price of the position held.
        entry_fees: Fees paid opening the position held, not yet charged to a round trip.

    Returns:
        ``(new, closed, closed_entry_fees, exit_fee, entry_price, entry_fees)``: units held
        after the fill (dust snapped to 0); the units of the round trip closed (0 when
        none; ``closed == held`` when all of it) with its share of the entry fees and of
        this fill's fee; the position's entry price and entry fees after the fill.
    """
    old = held
    new = held + delta
    if abs(new) < DUST:
        new = 0.0
    closed = 0.0
    closed_entry_fees = 0.0
    exit_fee = 0.0
    flipped = new == 0 or (new > 0) != (old > 0)
    if old != 0 and (flipped or abs(new) < abs(old)):
        closed = old if flipped else old - new
        share = abs(closed) / abs(delta)  # the part of this fill's fee that closes
        exit_fee = paid * share
        closed_entry_fees = entry_fees * (abs(closed) / abs(old))
        remaining = (abs(old) - abs(closed)) / abs(old)
        entry_fees *= remaining
        paid -= paid * share
        if remaining == 0:
            entry_price = 0.0
        old -= closed
    if new != 0 and abs(new) > abs(old):  # opened or added to, on new's side
        added = abs(new) - abs(old)
        entry_price = (abs(old) * entry_price + added * price) / abs(new)
        entry_fees += paid
    return new, closed, closed_entry_fees, exit_fee, entry_price, entry_fees


def round_trip_pnl(closed: float, price: float, entry_price: float, entry_fees: float,
                   exit_fee: float) -> float:
    """P&L after fees of ``closed`` units (negative = a short) entered at ``entry_price``
    and left at ``price``."""
    return closed * (price - entry_price) - entry_fees - exit_fee


# --- carry rules: what holding costs while time passes --------------------------------------

def bar_rate(yearly: float, bar_ms: float) -> float:
    """The interest of one bar of ``bar_ms`` milliseconds at ``yearly`` simple interest
    over a 365-day year (``0.1`` a year on daily bars: ``0.1 / 365`` a bar)."""
    return yearly * bar_ms / YEAR_MS


def coin_interest(held: float, close: float, rate: float) -> float:
    """One bar's interest at ``rate`` (``bar_rate``) on the coins borrowed for a short of
    ``held`` units (0 for a long or flat position), marked at ``close``."""
    if held < 0:
        return -held * close * rate
    return 0.0


def cash_interest(cash: float, rate: float) -> float:
    """One bar's interest at ``rate`` (``bar_rate``) on borrowed cash: on ``-cash`` when
    the cash is below zero, else 0."""
    if cash < 0:
        return -cash * rate
    return 0.0


def funding(held: float, price: float, rate: float) -> float:
    """Funding paid (> 0) or received (< 0) by ``held`` units of a perpetual future at a
    funding ``rate``, marked at ``price``: a long pays a positive rate, a short receives
    it (and the other way round for a negative rate)."""
    return held * price * rate
