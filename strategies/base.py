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
"""

from __future__ import annotations

from typing import Any

import backtrader as bt


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
        config, market data, walk-forward result, traded symbols, model directory).

        A strategy that learns from the run's data out of sample (``rl_ppo``) trains here
        and returns its decisions in the params. Defaults to ``params`` unchanged.
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
