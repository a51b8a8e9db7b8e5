"""report.html's round-trip tables: every strategy's trades.csv rows, sortable and filterable.

The rows travel in the page as one JSON document (columns once, then plain arrays) and are
drawn by ``assets/page.js``: choosing a strategy, typing a filter or clicking a column
header redraws the table and the figures of the rows shown (expectancy, best and worst
trade, holding time). The page stays self-contained and offline.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from engine.report.trades import trade_records
from engine.simulation import StrategyRun

# (key, header, kind): kind decides formatting and alignment in page.js.
COLUMNS = (
    ("entry_time", "entry", "text"), ("exit_time", "exit", "text"),
    ("symbol", "symbol", "text"), ("side", "side", "text"),
    ("bars_held", "bars held", "number"), ("days_held", "days held", "days"),
    ("size", "size", "price"), ("entry_price", "entry price", "price"),
    ("exit_price", "exit price", "price"), ("pnl", "pnl", "money"),
    ("return", "return", "percent"), ("fees", "fees", "money"),
)


def _time(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    stamp = pd.Timestamp(value)
    text = stamp.strftime("%Y-%m-%d %H:%M")
    return text.removesuffix(" 00:00")  # daily bars: the day alone


def _number(value: Any, digits: int | None = None) -> float | int | None:
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return round(value, digits) if digits is not None else float(f"{value:.10g}")


def _rows(run: StrategyRun) -> list[list[Any]]:
    last = run.equity.index[-1] if len(run.equity) else None
    rows = []
    for trade in trade_records(run):
        entry = pd.Timestamp(trade["entry_time"]) if trade["entry_time"] is not None else None
        end = trade["exit_time"] if trade["exit_time"] is not None else last
        days = (pd.Timestamp(end) - entry).total_seconds() / 86_400 \
            if entry is not None and end is not None else None
        rows.append([
            _time(trade["entry_time"]), _time(trade["exit_time"]), trade["symbol"],
            trade["side"], int(trade["bars_held"]) if trade["bars_held"] is not None else None,
            _number(days, 3), _number(trade["size"]), _number(trade["entry_price"]),
            _number(trade["exit_price"]), _number(trade["pnl"], 2), _number(trade["return"], 6),
            _number(trade["fees"], 2)])
    return rows


def trades_section(runs: Sequence[StrategyRun]) -> str:
    """The "Round trips" section: a strategy picker, a filter, the table and its data."""
    payload = {"columns": [{"key": k, "header": h, "kind": kind} for k, h, kind in COLUMNS],
               "runs": [{"label": r.label, "symbol": r.symbol, "rows": _rows(r)} for r in runs]}
    options = "".join(
        f'<option value="{i}">{html.escape(r.label)} on {html.escape(r.symbol)} '
        f"({len(run['rows'])})</option>"
        for i, (r, run) in enumerate(zip(runs, payload["runs"], strict=True)))
    text = ' class="text"'
    heads = "".join(f'<th data-key="{k}"{text if kind == "text" else ""}>{html.escape(h)}'
                    '<span class="mark"></span></th>' for k, h, kind in COLUMNS)
    data = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    return (
        "<h2>Round trips</h2>"
        '<p class="note">Every round trip of one strategy (trades.csv): type in the filter to '
        "keep the rows that contain all its words (a symbol, long or short, a date such as "
        "2024-03), click a column to sort. The line above the table sums up the rows shown; "
        "a position still open at the end is marked at the last close.</p>"
        '<div class="controls"><label>strategy <select id="trade-run">' + options +
        '</select></label> <label>show <select id="trade-outcome"><option value="all">all'
        '</option><option value="winners">winners</option><option value="losers">losers'
        '</option></select></label> <label>filter <input id="trade-filter" type="search" '
        'placeholder="e.g. short 2024"></label></div>'
        '<p id="trade-stats" class="stats"></p>'
        f'<div class="scroll tall"><table id="trade-table" class="trades"><thead><tr>{heads}'
        "</tr></thead><tbody></tbody></table></div>"
        f'<script type="application/json" id="trade-data">{data}</script>')
