"""Round trips and fills of every run, as the rows of trades.csv and fills.csv.

``trade_records`` is the one place that reads a ``StrategyRun``'s trade records, so the
report does not depend on how the simulation names its fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from engine.simulation import StrategyRun

TRADE_COLUMNS = ["strategy", "symbol", "side", "size", "entry_time", "entry_price",
                 "exit_time", "exit_price", "pnl", "return", "fees", "bars_held",
                 "open_at_end"]
FILL_COLUMNS = ["strategy", "symbol", "time", "side", "size", "price", "fee", "value",
                "decided_at"]


def trade_records(run: StrategyRun) -> list[dict[str, Any]]:
    """One dict per round trip with the keys of ``TRADE_COLUMNS`` (missing ones None).

    An open position at the end is one record with ``open_at_end`` true, marked at the
    last close; ``exit_time`` is then empty.
    """
    rows = []
    for trade in run.trades:
        if "entry_time" in trade:
            row = dict(trade)
        else:  # records with open/close/pnl only: derive what the fills and bars tell
            row = _from_open_close(run, trade)
        row.setdefault("symbol", run.symbol)
        row["strategy"] = run.label
        rows.append({c: row.get(c) for c in TRADE_COLUMNS})
    return rows


def _from_open_close(run: StrategyRun, trade: dict[str, Any]) -> dict[str, Any]:
    entry, exit_ = trade.get("open"), trade.get("close")
    fills = run.fills.set_index("time") if not run.fills.empty else None
    first = _fill_at(fills, entry)
    last = _fill_at(fills, exit_)
    index = run.equity.index
    bars = None
    if entry is not None:
        start = index.searchsorted(_utc(entry))
        end = len(index) - 1 if exit_ is None else index.searchsorted(_utc(exit_))
        bars = int(end - start)
    size = first["size"] if first is not None else None
    entry_price = first["price"] if first is not None else None
    return {"side": None if first is None else ("long" if first["side"] == "buy" else "short"),
            "size": size, "entry_time": _utc(entry) if entry is not None else None,
            "entry_price": entry_price,
            "exit_time": _utc(exit_) if exit_ is not None else None,
            "exit_price": last["price"] if last is not None else None,
            "pnl": trade["pnl"],
            "return": trade["pnl"] / (size * entry_price) if size and entry_price else None,
            "fees": _fees(first, last, size), "bars_held": bars,
            "open_at_end": bool(trade.get("open_at_end"))}


def _fees(first: pd.Series | None, last: pd.Series | None, size: float | None) -> float | None:
    """Entry plus exit commission when each fill is this trade's alone (no reversal)."""
    if first is None:
        return None
    fills = [f for f in (first, last) if f is not None]
    if any(abs(f["size"] - size) > 1e-12 * max(1.0, size) for f in fills):
        return None
    return float(sum(f["commission"] for f in fills))


def _utc(when) -> pd.Timestamp:
    stamp = pd.Timestamp(when)
    return stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")


def _fill_at(fills: pd.DataFrame | None, when) -> pd.Series | None:
    if fills is None or when is None:
        return None
    match = fills.loc[fills.index == _utc(when)]
    return None if match.empty else match.iloc[0]


def trades_frame(runs: Sequence[StrategyRun]) -> pd.DataFrame:
    """Every run's round trips, in order of entry within each (strategy, symbol)."""
    return pd.DataFrame([r for run in runs for r in trade_records(run)], columns=TRADE_COLUMNS)


def fill_records(run: StrategyRun) -> pd.DataFrame:
    """One run's fills with the columns of ``FILL_COLUMNS``."""
    fills = run.fills.rename(columns={"commission": "fee"}).copy()
    fills.insert(0, "strategy", run.label)
    if "symbol" not in fills.columns:
        fills.insert(1, "symbol", run.symbol)
    if "decided_at" not in fills.columns:
        # a fill happens at the open of the bar after the decision's close
        index = run.equity.index
        pos = index.searchsorted(pd.DatetimeIndex(fills["time"])) - 1
        fills["decided_at"] = [index[p] if p >= 0 else None for p in pos]
    return fills.reindex(columns=FILL_COLUMNS)


def fills_frame(runs: Sequence[StrategyRun]) -> pd.DataFrame:
    """Every run's fills in long form."""
    parts = [fill_records(run) for run in runs if not run.fills.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=FILL_COLUMNS)
