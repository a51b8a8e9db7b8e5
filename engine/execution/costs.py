"""What a fill costs: slippage against the trader, capped to the bar, and commission."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CostModel:
    """Commission on traded value and slippage against the trader.

    Args:
        commission: Fee per fill as a fraction of the traded value, e.g. 0.001 = 0.1%.
        slippage: Adverse price move per fill as a fraction of the reference price.
    """

    commission: float = 0.0
    slippage: float = 0.0

    def fill_price(self, delta: float, price: float, high: float | None = None,
                   low: float | None = None) -> float:
        """The price a fill of ``delta`` units gets at reference ``price``.

        A buy pays ``price * (1 + slippage)``, at most the bar's ``high``; a sell gets
        ``price * (1 - slippage)``, at least the bar's ``low`` (a fill cannot happen at a
        price the bar never traded). Without a bar (a ticker fill) nothing is capped.
        """
        if delta > 0:
            slipped = price * (1 + self.slippage)
            return min(slipped, high) if high is not None else slipped
        slipped = price * (1 - self.slippage)
        return max(slipped, low) if low is not None else slipped

    def fee(self, units: float, price: float) -> float:
        """Commission on ``units`` traded at ``price``."""
        return abs(units) * price * self.commission

    def unit_cost(self, price: float) -> float:
        """Cash one unit bought at ``price`` takes, slippage and fee included (uncapped)."""
        return price * (1 + self.slippage) * (1 + self.commission)

    def liquidation_value(self, size: float, price: float) -> float:
        """Cash that closing ``size`` units at ``price`` would bring (negative for a short)."""
        if size > 0:
            return size * price * (1 - self.slippage) * (1 - self.commission)
        return size * self.unit_cost(price)
