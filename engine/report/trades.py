"""Round trips and fills of every run, as the rows of trades.csv and fills.csv.

``trade_records`` is the one place that reads a ``StrategyRun``'s trade records, so the
report does not depend on how the simulation names its fields. ``account`` is the run's
symbol in report.json (the traded symbol, or ``portfolio`` when several symbols share one
account); ``symbol`` is the instrument of the trade or fill.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from engine.simulation import StrategyRun

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
    return [{**{c: trade.get(c) for c in TRADE_COLUMNS}, "strategy": run.label,
             "account": run.symbol, "symbol": trade.get("symbol", run.symbol)}
            for trade in run.trades]


def trades_frame(runs: Sequence[StrategyRun]) -> pd.DataFrame:
    """Every run's round trips, in order of entry within each (strategy, symbol)."""
    return pd.DataFrame([r for run in runs for r in trade_records(run)], columns=TRADE_COLUMNS)


def fill_records(run: StrategyRun) -> pd.DataFrame:
    """One run's fills with the columns of ``FILL_COLUMNS``."""
    fills = run.fills.rename(columns={"commission": "fee"})
    fills = fills.assign(strategy=run.label, account=run.symbol)
    return fills.reindex(columns=FILL_COLUMNS)


def fills_frame(runs: Sequence[StrategyRun]) -> pd.DataFrame:
    """Every run's fills in long form."""
    parts = [fill_records(run) for run in runs if not run.fills.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=FILL_COLUMNS)
