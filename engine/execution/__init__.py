"""The execution core: the only place where money moves.

- ``rules``: the money rules as plain functions of floats (fill price, fee, unit cost,
  liquidation value, order size, affordable scale, position move, borrow interest), one
  definition each;
- ``costs``: the cost model, which binds the cost rules to its commission and slippage;
- ``sizing``: target weights of equity -> units to trade (one rule for every driver);
- ``account``: one cash balance shared by every symbol, positions, fees, round trips, and
  the accounts a config's broker section describes;
- ``records``: ``Fill``, ``RoundTrip`` and ``StrategyRun``, what drivers hand on;
- ``kernel``: the same rules compiled with numba, for one account and one symbol, the
  sweep's fast path (imported on its own: numba is in the ``sweep`` extra).

Backtests (``engine.simulation``), paper trading, the RL environment and the sweep kernel
all drive these rules; parity tests pin them to the same equity for the same decisions.
"""

from engine.execution.account import (
    Account,
    Bar,
    Position,
    borrow_per_bar,
    contributions,
    cost_model,
    make_account,
    restore_account,
)
from engine.execution.costs import CostModel
from engine.execution.records import (
    PORTFOLIO,
    Fill,
    RoundTrip,
    StrategyRun,
    fill_table,
)
from engine.execution.sizing import liquidation_equity, order_sizes

__all__ = ["PORTFOLIO", "Account", "Bar", "CostModel", "Fill", "Position", "RoundTrip",
           "StrategyRun", "borrow_per_bar", "contributions", "cost_model", "fill_table",
           "liquidation_equity", "make_account", "order_sizes", "restore_account"]
