"""Tables for a terminal: the key columns that fit 120 characters, or every column.

The console shows a compact table by default: the columns a reader needs first, in
priority order, as many as fit ``WIDTH`` characters, kept in the table's own column order.
Every other figure is in report.json and report.html; ``--wide`` prints them all.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import pandas as pd

from engine.report.tables import render_table

WIDTH = 120  # characters: a terminal of 120 columns shows every line whole
# Trading columns, most wanted first (strategy and symbol are always shown).
TRADING_PRIORITY = ("total_return", "sharpe", "max_drawdown", "final_equity", "n_trades",
                    "cagr", "win_rate", "profit_factor", "fees_paid", "borrow_paid",
                    "funding_paid", "sortino", "exposure", "calmar", "volatility", "alpha",
                    "beta", "information_ratio")
FORECAST_PRIORITY = ("n", "mse_ratio", "directional_accuracy", "direction_baseline",
                     "direction_p", "dm_stat", "dm_p_two_sided", "rmse", "mape",
                     "persistence_rmse", "mse", "persistence_mse", "dm_p_better")
# The forecasters table of a run with several (forecaster and symbol are always shown).
LAB_PRIORITY = ("return_mse_ratio", "in_mcs", "dm_p_better", "mse_ratio",
                "directional_accuracy", "kind", "target", "n")
_ELLIPSIS = ".."


def fit_table(frame: pd.DataFrame, keep: Sequence[str], priority: Sequence[str],
              width: int = WIDTH) -> pd.DataFrame:
    """The columns of ``frame`` that fit ``width`` characters when rendered.

    Args:
        frame: The full table.
        keep: Columns always shown (labels); the longest text among them is shortened
            (ending in "..") when they alone are wider than ``width``.
        priority: The other columns, most wanted first; each is added when it still fits.
        width: Characters per line. Defaults to ``WIDTH``.

    Returns:
        A new frame with the chosen columns in ``frame``'s order.
    """
    keep = [c for c in keep if c in frame.columns]
    chosen = _shorten(frame[keep], width)
    for column in priority:
        if column not in frame.columns or column in chosen.columns:
            continue
        trial = chosen.assign(**{column: frame[column]})
        if _width(trial) <= width:
            chosen = trial
    order = [c for c in frame.columns if c in chosen.columns]
    return chosen[order]


def left_out(frame: pd.DataFrame, shown: pd.DataFrame) -> list[str]:
    """The columns of ``frame`` that ``shown`` leaves out."""
    return [c for c in frame.columns if c not in shown.columns]


def console_table(frame: pd.DataFrame, keep: Sequence[str], priority: Sequence[str],
                  wide: bool = False, width: int = WIDTH) -> str:
    """The rendered table: every column with ``wide``, else what fits ``width``."""
    return render_table(frame if wide else fit_table(frame, keep, priority, width))


def not_shown(hidden: Sequence[str], where: str, width: int = WIDTH) -> str:
    """The note under compact tables naming the columns left out, wrapped to ``width``."""
    return textwrap.fill(f"Not shown: {', '.join(hidden)} (in {where}; --wide prints every "
                         "column)", width=width, break_on_hyphens=False)


def _width(frame: pd.DataFrame) -> int:
    return max(len(line) for line in render_table(frame).splitlines())


def _shorten(frame: pd.DataFrame, width: int) -> pd.DataFrame:
    """Shorten the longest text column until ``frame`` fits (labels of many parameters)."""
    frame = frame.copy()
    while _width(frame) > width:
        text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        if not text:
            break
        column = max(text, key=lambda c: frame[c].astype(str).str.len().max())
        longest = int(frame[column].astype(str).str.len().max())
        limit = max(longest - (_width(frame) - width), len(_ELLIPSIS) + 4)
        if limit >= longest:
            break
        frame[column] = frame[column].astype(str).map(
            lambda v, n=limit: v if len(v) <= n else v[: n - len(_ELLIPSIS)] + _ELLIPSIS)
    return frame
