"""Forecast and trading metrics, report.json and the printed summary tables.

Every field written here is documented in README.md ("What the report says").
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.secrets import redact
from engine.simulation import StrategyRun, exposure_share

# Metrics where smaller is better, for sorting comparison tables.
LOWER_IS_BETTER = {"max_drawdown", "fees_paid"}
TABLE_COLUMNS = ["total_return", "cagr", "sharpe", "sortino", "max_drawdown", "n_trades",
                 "win_rate", "exposure", "fees_paid", "final_equity"]


# --- forecasts ------------------------------------------------------------------------

def forecast_metrics(table: pd.DataFrame, closes: pd.Series) -> dict[str, Any]:
    """Model vs persistence ("next close = this close") on exactly the forecast bars.

    Args:
        table: One symbol's forecasts (``engine.walkforward``), indexed by decision bar.
        closes: That symbol's closes over all bars.

    Returns:
        ``{n, mse, rmse, mae, mape, directional_accuracy, mse_ratio, persistence: {...}}``
        over the forecasts whose target bar is inside the data.
    """
    scored = table[table["target"].isin(closes.index)]
    actual = closes.reindex(scored["target"]).to_numpy()
    last = closes.reindex(scored.index).to_numpy()
    base = scored["base_close"].to_numpy()
    model = _errors(scored["pred_target"].to_numpy(), actual / base - 1,
                    scored["pred_close"].to_numpy(), actual, last, directional=True)
    naive = _errors(last / base - 1, actual / base - 1, last, actual, last, directional=False)
    ratio = model["mse"] / naive["mse"] if naive["mse"] else None
    return {"n": int(len(scored)), **model, "mse_ratio": ratio, "persistence": naive,
            "up_share": float(np.mean(actual > last)) if len(scored) else None}


def _errors(target_pred, target_true, price_pred, price_true, last, directional: bool) -> dict:
    if len(price_true) == 0:
        return {k: None for k in ("mse", "rmse", "mae", "mape", "directional_accuracy")}
    err = price_pred - price_true
    hits = np.sign(price_pred - last) == np.sign(price_true - last)
    return {
        "mse": float(np.mean((target_pred - target_true) ** 2)),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "mape": float(np.mean(np.abs(err) / price_true)),
        "directional_accuracy": float(np.mean(hits)) if directional else None,
    }


def fold_metrics(table: pd.DataFrame, closes: pd.Series) -> pd.DataFrame:
    """Model and persistence MSE (target scale) for each fold of one symbol."""
    rows = []
    for fold, part in table.groupby("fold"):
        metrics = forecast_metrics(part, closes)
        if metrics["n"]:
            rows.append({"fold": int(fold), "n": metrics["n"], "mse": metrics["mse"],
                         "persistence_mse": metrics["persistence"]["mse"]})
    return pd.DataFrame(rows, columns=["fold", "n", "mse", "persistence_mse"])


# --- trading --------------------------------------------------------------------------

def trading_metrics(run: StrategyRun, bars_per_year: float) -> dict[str, Any]:
    """Return, risk and activity of one strategy run (see README for each field)."""
    equity = run.equity
    returns = equity.pct_change().dropna()
    total = equity.iloc[-1] / equity.iloc[0] - 1
    years = (equity.index[-1] - equity.index[0]) / pd.Timedelta(days=365.25)
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0) ** 2))) if len(returns) else 0.0
    std = float(returns.std(ddof=1)) if len(returns) > 1 else 0.0
    wins = [t["pnl"] > 0 for t in run.trades]
    return {
        "total_return": float(total),
        "cagr": float((1 + total) ** (1 / years) - 1) if years > 0 and total > -1 else None,
        "sharpe": float(returns.mean() / std * math.sqrt(bars_per_year)) if std > 0 else None,
        "sortino": float(returns.mean() / downside * math.sqrt(bars_per_year))
        if downside > 0 else None,
        "max_drawdown": float((1 - equity / equity.cummax()).max()),
        "n_trades": len(run.trades),
        "win_rate": float(np.mean(wins)) if wins else None,
        "exposure": exposure_share(run.position),
        "fees_paid": float(run.fees),
        "final_equity": float(equity.iloc[-1]),
    }


def comparison_table(results: Iterable[Mapping[str, Any]], sort_by: str) -> pd.DataFrame:
    """One row per (strategy, symbol), best first by ``sort_by`` (missing values last)."""
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


# --- output ---------------------------------------------------------------------------

def write_json(path: Path, payload: Any) -> Path:
    """Write JSON with NaN/inf as null, atomically (temp file + rename)."""
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


PERCENT = {"total_return", "cagr", "max_drawdown", "win_rate", "exposure", "mape",
           "directional_accuracy", "buy_and_hold_return"}


def format_value(column: str, value: Any) -> str:
    """Human formatting for tables: percentages, ratios, money."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if column in PERCENT:
        return f"{100 * value:.1f}%"
    if column in ("n_trades", "n", "fold"):
        return f"{int(value)}"
    if column in ("fees_paid", "final_equity", "equity", "realized", "unrealized",
                  "last_close", "entry_price") or column.endswith(("rmse", "mae")):
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


def forecast_table(forecast: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Per symbol: model error beside persistence error."""
    rows = []
    for symbol, m in forecast.items():
        p = m["persistence"]
        rows.append({"symbol": symbol, "n": m["n"], "mse": m["mse"], "persistence_mse": p["mse"],
                     "mse_ratio": m["mse_ratio"], "rmse": m["rmse"], "persistence_rmse": p["rmse"],
                     "mape": m["mape"], "directional_accuracy": m["directional_accuracy"]})
    return pd.DataFrame(rows)
