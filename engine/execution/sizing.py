"""The sizing rule: target weights of equity -> units to trade at this bar's open.

One rule for every driver (backtest, paper trading, the RL environment, sweeps):

- a target is a signed fraction of the account's equity (1 = all equity long, -0.5 = half
  of it short, 0 = flat); a symbol without a target keeps its position;
- a target on the side already held keeps the position, unless ``resize`` is asked for
  (positions are opened, closed and reversed, never trimmed bar by bar, which would pay
  fees for drift);
- otherwise the position becomes ``|weight| x equity`` worth of units, where equity is the
  cash plus what every open position would bring if closed at this open (after slippage
  and fee), and one unit costs the open price plus slippage plus fee. A hair (1e-9) is
  kept back so that rounding can never ask for more cash than there is.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.execution import rules
from engine.execution.costs import CostModel


def liquidation_equity(cash: float, positions: Mapping[str, float], prices: Mapping[str, float],
                       costs: CostModel) -> float:
    """Cash plus what closing every position at ``prices`` would bring after costs."""
    equity = cash
    for symbol, size in positions.items():
        if size:
            equity += costs.liquidation_value(size, prices[symbol])
    return equity


def order_sizes(targets: Mapping[str, float], positions: Mapping[str, float], cash: float,
                prices: Mapping[str, float], costs: CostModel,
                resize: bool = False) -> dict[str, float]:
    """Units to buy (> 0) or sell (< 0) per symbol to reach ``targets``; no entry = no trade.

    Args:
        targets: Wanted weight of equity per symbol.
        positions: Units held per symbol (missing = 0).
        cash: Cash in the account.
        prices: Reference price per symbol (this bar's open, or a ticker).
        costs: Commission and slippage.
        resize: Also resize positions already on the target's side.

    Returns:
        The order per symbol, in the order of ``targets``.
    """
    equity = liquidation_equity(cash, positions, prices, costs)
    orders: dict[str, float] = {}
    for symbol, weight in targets.items():
        delta = rules.order_units(weight, positions.get(symbol, 0.0), equity,
                                  costs.unit_cost(prices[symbol]), resize)
        if delta:
            orders[symbol] = delta
    return orders
