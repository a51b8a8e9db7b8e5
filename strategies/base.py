"""The base class every strategy derives from: decisions as target weights, nothing more.

A strategy says *which side it wants* in each symbol at a bar's close; the base class turns
that into target weights of equity and hands them to the broker, whose execution core fills
them at the next bar's open (``engine.execution``). Strategies never size orders, never see
costs and never read broker settings, and ``signal()`` sees bars up to the current close
only, so lookahead is impossible by construction.

Weights. With one traded symbol a signal of +1 means ``size`` x equity long. With several
symbols sharing one account (portfolio mode) the equity is split equally among the symbols
held after the decision: each holds ``size / k`` of equity, k being how many are held.
When the set of held symbols changes (an entry or an exit), every held symbol is resized to
that equal split; while it stays the same, nothing is traded (no rebalancing for drift).

Decisions written once. A strategy that offers the sweep's fast path writes its decision
as a *rule*: a plain function of floats giving the side wanted at a close from that
close's inputs (a forecast, two averages) and the side held, NaN to keep what is held.
``signal()`` calls the rule at each bar; ``weights_array`` (the kernel's form, see
``engine.execution.kernel``) applies the very same function to whole arrays
(``decision_array``), so the two forms cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import backtrader as bt
import numpy as np


class TargetStrategy(bt.Strategy):
    """Base class: subclasses implement ``signal()`` (or ``decide()`` for full control).

    Subclasses set a class attribute ``name`` (the name configs use) and may declare
    backtrader ``params`` with defaults (their types are enforced when a config is loaded),
    a ``check_params`` classmethod for ranges and cross-field rules, and ``warmup_bars``
    (how many bars the decision at a bar looks back, for paper trading's bounded replay).

    Params:
        trade_start: Datetime of the first bar whose decisions are acted on; earlier bars
            only warm up indicators. Defaults to None (trade from the first bar).
        forecasts: ``{symbol: forecast table}`` for strategies whose ``needs_forecast`` is
            True.
    """

    name: str = ""
    needs_forecast = False
    extra: str | None = None  # the optional install it needs (``engine.extras``), if any
    params = (("trade_start", None), ("forecasts", None))

    def signal(self, data) -> float | None:
        """The side wanted in ``data``'s symbol at this close: 1 long, -1 short, 0 flat.

        None keeps whatever is held. Called at each bar's close inside the traded period.
        """
        raise NotImplementedError

    def decide(self) -> tuple[dict[str, float], bool] | None:
        """Target weights at this close and whether held positions are resized to them.

        Defaults to the equal split of the module docstring over ``signal()``'s sides.
        Returns None (or empty weights) to keep everything as it is.
        """
        sides = {d._name: self.signal(d) for d in self.datas}
        held = {d._name: self.getposition(d).size for d in self.datas}
        return equal_split(sides, held, getattr(self.p, "size", 1.0))

    @classmethod
    def check_params(cls, params: dict) -> None:
        """Raise ``engine.errors.InvalidKey`` for a bad parameter. Default: no rules."""

    @classmethod
    def check_symbols(cls, params: dict, symbols: tuple[str, ...], leverage: float) -> None:
        """Raise ``InvalidKey`` if ``params`` do not fit the traded ``symbols``."""

    @classmethod
    def prepare(cls, params: dict, context: Any) -> dict:
        """Parameters for one backtest run, given ``context`` (``engine.pipeline.RunContext``:
        config, market data, walk-forward result, traded symbols, label, model directory).

        A strategy that reads a file checks it against the run's data here (``replay``).
        Defaults to ``params`` unchanged.
        """
        return params

    @classmethod
    def reads_forecaster(cls, params: dict, config: Any) -> str | None:
        """The name of the forecaster whose forecasts the strategy reads with ``params``
        in ``config`` ("" = the config's first); None when it reads none. Defaults to its
        ``forecaster`` parameter when ``needs_forecast``."""
        return params.get("forecaster") or "" if cls.needs_forecast else None

    @classmethod
    def warmup_bars(cls, params: dict) -> int:
        """Bars before a decision bar that its decision depends on. Defaults to 0."""
        return 0

    @property
    def trading(self) -> bool:
        """Whether the current bar is inside the traded period."""
        start = self.p.trade_start
        return start is None or self.data.datetime.datetime(0) >= start

    def next(self):
        if self.trading:
            decision = self.decide()
            if decision and decision[0]:
                self.broker.order_targets(decision[0], decision[1],
                                          self.data.datetime.datetime(0))


def side_or_keep(side: float) -> float | None:
    """A rule's side as ``signal()`` returns it: NaN (keep what is held) becomes None."""
    return None if math.isnan(side) else side


_LOOPS: dict[tuple, Callable] = {}  # (rule, per-bar inputs) -> its compiled loop


def decision_array(rule: Callable[..., float], size: float, bars: int,
                   per_bar: tuple[np.ndarray, ...] = (), settings: tuple = ()) -> np.ndarray:
    """The sweep kernel's ``(bars, 3)`` decision array from a strategy's rule.

    The rule is compiled with numba into one loop over the bars (once per rule) and called
    at every bar for each side held.

    Args:
        rule: ``rule(*values, *settings, held) -> side`` on floats (1 long, -1 short, 0
            flat, NaN keep): ``values`` are the bar's per-bar inputs, ``held`` the side
            held (0, 1 or -1).
        size: The weight of a side of 1 (fraction of equity in the market).
        bars: Number of bars.
        per_bar: Up to three float arrays with one value per bar, in the rule's order.
        settings: The rule's constant arguments (floats, bools), in its order.

    Returns:
        Target weights wanted at each close when flat, long and short (NaN = keep).
    """
    key = (rule, len(per_bar))
    if key not in _LOOPS:
        _LOOPS[key] = _compile_loop(rule, len(per_bar))
    out = np.empty((bars, 3))
    _LOOPS[key](out, float(size), *(np.asarray(a, dtype="float64") for a in per_bar),
                tuple(settings))
    return out


def _compile_loop(rule: Callable[..., float], arity: int) -> Callable:
    """``rule`` over every bar and side held, compiled for ``arity`` per-bar inputs."""
    from numba import njit  # defers numba (sweep extra): only the kernel reads this form

    if arity not in _LOOP_SHAPES:
        raise ValueError(f"a decision rule takes at most three per-bar inputs, not {arity}")
    return njit(_LOOP_SHAPES[arity](njit(rule)))


def _no_input_loop(side):
    def loop(out, size, settings):
        for j, held in enumerate((0.0, 1.0, -1.0)):
            out[:, j] = size * side(*settings, held)
    return loop


def _one_input_loop(side):
    def loop(out, size, a, settings):
        for i in range(out.shape[0]):
            for j, held in enumerate((0.0, 1.0, -1.0)):
                out[i, j] = size * side(a[i], *settings, held)
    return loop


def _two_input_loop(side):
    def loop(out, size, a, b, settings):
        for i in range(out.shape[0]):
            for j, held in enumerate((0.0, 1.0, -1.0)):
                out[i, j] = size * side(a[i], b[i], *settings, held)
    return loop


def _three_input_loop(side):
    def loop(out, size, a, b, c, settings):
        for i in range(out.shape[0]):
            for j, held in enumerate((0.0, 1.0, -1.0)):
                out[i, j] = size * side(a[i], b[i], c[i], *settings, held)
    return loop


_LOOP_SHAPES = {0: _no_input_loop, 1: _one_input_loop, 2: _two_input_loop,
                3: _three_input_loop}


def equal_split(sides: dict[str, float | None], held: dict[str, float],
                size: float) -> tuple[dict[str, float], bool] | None:
    """Weights that split ``size`` x equity equally among the symbols held after ``sides``.

    Args:
        sides: Wanted side per symbol (1, -1, 0, or None to keep what is held).
        held: Units held per symbol now.
        size: Fraction of equity in the market when anything is held.

    Returns:
        (weights, resize): resize is True when the set of held symbols changes.
    """
    after = {s: side for s, side in sides.items() if side}
    after.update({s: 1.0 if held[s] > 0 else -1.0
                  for s, side in sides.items() if side is None and held.get(s)})
    changed = set(after) != {s for s, units in held.items() if units}
    n = len(after)
    if changed:
        weights = {s: size * side / n for s, side in after.items()}
        weights.update({s: 0.0 for s in sides if s not in after and held.get(s)})
        return weights, n > 1 or len(sides) > 1
    # Same set: only reversals trade (a target on the side held keeps the position).
    weights = {s: size * side / n for s, side in sides.items() if side}
    return (weights, False) if weights else None
