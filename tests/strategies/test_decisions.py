"""A fast-path strategy's two forms decide alike: per bar in backtrader, and as an array.

Both forms call the strategy's one decision rule; this pins that they agree at every bar
of generated data, for every registered strategy with an array form (``tests/fast_path``).
"""

from __future__ import annotations

import math

import pytest

from engine.simulation import simulate
from strategies.registry import resolve_params
from tests.fast_path import BROKERS, SEEDS, SYMBOL, fast_path_strategies, series, variants

START = 40


def effective(weight: float, held: float) -> float:
    """A decision as it acts: NaN when it trades nothing (none, flat while flat, or the
    side already held), else the weight."""
    if math.isnan(weight) or (weight == 0 and held == 0):
        return math.nan
    if held and weight and (held > 0) == (weight > 0):
        return math.nan
    return weight


def per_bar_decisions(cls, params, frame, forecasts):
    """``(bar, units held, weight decided or NaN)`` at each traded close, from backtrader."""
    seen: list[tuple[int, float, float]] = []

    class Recording(cls):
        def decide(self):
            decision = super().decide()
            weight = decision[0].get(SYMBOL, math.nan) if decision else math.nan
            seen.append((len(self.data) - 1, self.getposition(self.data).size, weight))
            return decision

    simulate({SYMBOL: frame}, Recording, params, BROKERS["costly"],
             trade_start=frame.index[START], forecasts={SYMBOL: forecasts})
    return seen


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("name", "variant"), [(n, v) for n, cls in fast_path_strategies().items()
                                               for v in variants(cls)
                                               if v != "above_all_equity"], ids="-".join)
def test_the_array_form_decides_what_the_per_bar_form_decides(name, variant, seed):
    cls = fast_path_strategies()[name]
    params = resolve_params(name, variants(cls)[variant])
    frame, forecasts = series(seed)
    seen = per_bar_decisions(cls, params, frame, forecasts)
    array = cls.weights_array(params, frame, forecasts, SYMBOL)
    assert len(seen) == len(frame) - START and any(not math.isnan(w) for _, _, w in seen)
    for bar, held, weight in seen:
        column = 0 if held == 0 else (1 if held > 0 else 2)
        mine, theirs = effective(array[bar, column], held), effective(weight, held)
        assert (math.isnan(mine) and math.isnan(theirs)) or mine == theirs, (bar, held)
