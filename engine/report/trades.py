"""Round trips and fills of every run, as the rows of trades.csv and fills.csv.

The rows are the execution core's ``RoundTrip`` and ``Fill`` records with the run's label
and account added. ``account`` is the run's symbol in report.json (the traded symbol, or
``portfolio`` when several symbols share one account); ``symbol`` is the instrument of the
trade or fill.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from engine.execution import StrategyRun

TRADE_COLUMNS = ["strategy", "account", "symbol", "side", "size", "entry_time", "entry_price",
                 "exit_time", "exit_price", "pnl", "return", "fees", "bars_held",
                 "open_at_end"]
FILL_COLUMNS = ["strategy", "account", "symbol", "time", "side", "size", "price", "fee", "value",
                "decided_at"]


def trade_records(run: StrategyRun) -> list[dict[str, Any]]:
    """One dict per round trip with the keys of ``TRADE_COLUMNS``.

    An open position at the end is one record with ``open_at_end`` true, marked at the
    last close; ``exit_time`` is then empty.
    """
    rows = []
    for trade in run.trades:
        row = trade.row()
        rows.append({**{c: row.get(c) for c in TRADE_COLUMNS}, "strategy": run.label,
                     "account": run.symbol})
    return rows


def trades_frame(runs: Sequence[StrategyRun]) -> pd.DataFrame:
    """Every run's round trips, in order of entry within each (strategy, symbol)."""
    return pd.DataFrame([r for run in runs for r in trade_records(run)], columns=TRADE_COLUMNS)


def fill_records(run: StrategyRun) -> pd.DataFrame:
    """One run's fills with the columns of ``FILL_COLUMNS``."""
    fills = run.fill_table().assign(strategy=run.label, account=run.symbol)
    return fills.reindex(columns=FILL_COLUMNS)


def fills_frame(runs: Sequence[StrategyRun]) -> pd.DataFrame:
    """Every run's fills in long form."""
    parts = [fill_records(run) for run in runs if run.fills]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=FILL_COLUMNS)
