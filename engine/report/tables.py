"""Tables: the comparison table, text/Markdown rendering, number formatting, report.json."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.secrets import redact

# Metrics where smaller is better, for sorting comparison tables.
LOWER_IS_BETTER = {"max_drawdown", "fees_paid", "volatility"}
TABLE_COLUMNS = ["total_return", "cagr", "sharpe", "sortino", "calmar", "volatility",
                 "max_drawdown", "n_trades", "win_rate", "profit_factor", "exposure",
                 "alpha", "beta", "information_ratio", "fees_paid", "final_equity"]
PERCENT = {"total_return", "cagr", "max_drawdown", "win_rate", "exposure", "mape",
           "directional_accuracy", "buy_and_hold_return", "volatility", "alpha", "return",
           "hit_rate", "accuracy", "baseline", "up_share", "direction_baseline",
           "mean_signed_return", "min_abs_pred", "max_abs_pred", "min_return",
           "median_return", "max_return"}
MONEY = {"fees_paid", "final_equity", "equity", "realized", "unrealized", "last_close",
         "entry_price", "exit_price", "expectancy", "best_trade", "worst_trade", "pnl", "fees"}


def comparison_table(results: Iterable[Mapping[str, Any]], sort_by: str) -> pd.DataFrame:
    """One row per (strategy, symbol), best first by ``sort_by`` (missing values last).

    Metrics a result lacks (a report from an older version) are left empty.
    """
    frame = pd.DataFrame([{"strategy": r["strategy"], "symbol": r["symbol"],
                           **{c: r.get(c) for c in TABLE_COLUMNS}} for r in results])
    if frame.empty:
        return frame
    frame[TABLE_COLUMNS] = frame[TABLE_COLUMNS].astype("float64")
    return sort_table(frame, sort_by)


def sort_table(frame: pd.DataFrame, sort_by: str) -> pd.DataFrame:
    """Rows best first by ``sort_by`` (smallest first for drawdown and fees), NaN last."""
    return frame.sort_values(sort_by, ascending=sort_by in LOWER_IS_BETTER,
                             na_position="last", kind="stable").reset_index(drop=True)


def forecast_table(forecast: Mapping[str, Mapping[str, Any]],
                   diagnostics: Mapping[str, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """Per symbol: model error beside persistence error, and the tests when given."""
    rows = []
    for symbol, m in forecast.items():
        p = m["persistence"]
        row = {"symbol": symbol, "n": m["n"], "mse": m["mse"], "persistence_mse": p["mse"],
               "mse_ratio": m["mse_ratio"], "rmse": m["rmse"], "persistence_rmse": p["rmse"],
               "mape": m["mape"], "directional_accuracy": m["directional_accuracy"]}
        if diagnostics and symbol in diagnostics:
            dm, direction = diagnostics[symbol]["diebold_mariano"], \
                diagnostics[symbol]["directional"]
            row.update(dm_stat=dm["statistic"], dm_p_better=dm["p_value_model_better"],
                       dm_p_two_sided=dm["p_value_two_sided"],
                       direction_baseline=direction["baseline"],
                       direction_p=direction["p_value"])
        rows.append(row)
    return pd.DataFrame(rows)


def strength_table(diagnostics: Mapping[str, Any]) -> pd.DataFrame:
    """One symbol's hit rate by quintile of |predicted return|."""
    return pd.DataFrame(diagnostics["by_strength"],
                        columns=["quintile", "n", "min_abs_pred", "max_abs_pred", "hit_rate",
                                 "mean_signed_return"])


# --- output ---------------------------------------------------------------------------

def write_json(path: Path, payload: Any) -> Path:
    """Write JSON with NaN/inf as null and secrets blanked, atomically (temp file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(redact(json.dumps(_clean(payload), indent=2, default=str)) + "\n")
    tmp.replace(path)
    return path


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def format_value(column: str, value: Any) -> str:
    """Human formatting for tables: percentages, ratios, money."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if column in PERCENT:
        percent = 100 * value
        return f"{0.0 if abs(percent) < 0.05 else percent:.1f}%"  # no "-0.0%"
    if column in ("n_trades", "n", "fold", "quintile"):
        return f"{int(value)}"
    if column in MONEY or column.endswith(("rmse", "mae")):
        return f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 0.01 else f"{value:.2f}"
    return str(value)


def render_table(frame: pd.DataFrame, markdown: bool = False) -> str:
    """A DataFrame as an aligned text table or as Markdown; text columns align left."""
    headers = list(frame.columns)
    text = [not pd.api.types.is_numeric_dtype(frame[c]) for c in headers]
    rows = [[format_value(c, v) for c, v in zip(headers, row, strict=True)]
            for row in frame.itertuples(index=False)]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join("---" if t else "---:" for t in text) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if t else c.rjust(w)
                         for c, w, t in zip(cells, widths, text, strict=True)).rstrip()

    return "\n".join([line(headers)] + [line(r) for r in rows])
