"""What a fill costs: slippage against the trader, capped to the bar, and commission.

``CostModel`` binds the cost rules of ``engine.execution.rules`` to its numbers. A cost
model with another fee rule (a tiered commission, maker and taker rates) is a subclass
that sets ``rates`` and the cost rules it changes, as plain functions of floats and
``rates``; the account and the sweep kernel then both apply it (the kernel compiles the
subclass's rules with numba), for example::

    @dataclass(frozen=True)
    class Tiered(CostModel):
        discount_from: float = 100_000.0  # traded value from which the rate halves

        @property
        def rates(self):
            return (self.commission, self.slippage, self.discount_from)

        @staticmethod
        def fee_rule(units, price, rates):
            value = abs(units) * price
            return value * (rates[0] if value < rates[2] else rates[0] / 2)

(``unit_cost`` and ``liquidation_value`` are what sizing assumes a unit costs and a
position brings; a subclass keeps them or gives its own.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.execution import rules


@dataclass(frozen=True)
class CostModel:
    """Commission on traded value and slippage against the trader.

    Args:
        commission: Fee per fill as a fraction of the traded value, e.g. 0.001 = 0.1%.
        slippage: Adverse price move per fill as a fraction of the reference price.
    """

    commission: float = 0.0
    slippage: float = 0.0

    # The cost rules, as plain functions of floats and ``rates`` (see the module docstring).
    fill_rule = staticmethod(rules.fill_price)
    fee_rule = staticmethod(rules.fee)
    unit_cost_rule = staticmethod(rules.unit_cost)
    liquidation_rule = staticmethod(rules.liquidation_value)

    @property
    def rates(self) -> tuple[float, ...]:
        """The numbers the cost rules read: ``(commission, slippage)``."""
        return (self.commission, self.slippage)

    def fill_price(self, delta: float, price: float, high: float | None = None,
                   low: float | None = None) -> float:
        """The price a fill of ``delta`` units gets at reference ``price``, capped to the
        bar's ``high`` / ``low``; without a bar (a ticker fill) nothing is capped."""
        return self.fill_rule(delta, price, math.inf if high is None else high,
                              -math.inf if low is None else low, self.rates)

    def fee(self, units: float, price: float) -> float:
        """Commission on ``units`` traded at ``price``."""
        return self.fee_rule(units, price, self.rates)

    def unit_cost(self, price: float) -> float:
        """Cash one unit bought at ``price`` takes, slippage and fee included (uncapped)."""
        return self.unit_cost_rule(price, self.rates)

    def liquidation_value(self, size: float, price: float) -> float:
        """Cash that closing ``size`` units at ``price`` would bring (negative for a short)."""
        return self.liquidation_rule(size, price, self.rates)
