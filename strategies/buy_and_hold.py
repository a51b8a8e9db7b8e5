"""Buy-and-hold: the benchmark every report compares against."""

from __future__ import annotations

from strategies.base import TargetStrategy


class BuyAndHold(TargetStrategy):
    """All equity long from the first traded bar to the end."""

    name = "buy_and_hold"

    def target(self) -> float | None:
        return 1.0
