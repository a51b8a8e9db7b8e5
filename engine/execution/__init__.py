"""The execution core: the only place where money moves.

- ``costs``: commission on traded value, slippage against the trader capped to the bar;
- ``sizing``: target weights of equity -> units to trade (one rule for every driver);
- ``account``: one cash balance shared by every symbol, positions, fees, round trips;
- ``broker``: the backtrader broker that hands backtests' decisions to the account;
- ``kernel``: the same rules for one account and one symbol, compiled with numba, for the
  sweep's fast path (imported on its own: numba is in the ``sweep`` extra).

Backtests, paper trading, the RL environment and the sweep kernel all drive an ``Account``;
parity tests pin them to the same equity for the same decisions.
"""

from engine.execution.account import Account, Bar, Position
from engine.execution.broker import CoreBroker
from engine.execution.costs import CostModel
from engine.execution.sizing import liquidation_equity, order_sizes

__all__ = ["Account", "Bar", "CoreBroker", "CostModel", "Position", "liquidation_equity",
           "order_sizes"]
