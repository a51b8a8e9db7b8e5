"""Everything a backtest writes into its output directory, besides report.json.

- predictions.csv: timestamp, symbol, actual_close, predicted_close, fold
- equity.csv: timestamp, strategy, symbol, equity (read back by ``engine.compare``)
- comparison.csv / comparison.md: one row per (strategy, symbol), best first
- equity.png, forecast.png, folds.png: the charts
- report.html: one self-contained page with the config, tables and charts
- models/: each fold's ``.keras`` model with its JSON settings (written by the walk-forward)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from engine import plots
from engine.config import Config
from engine.data import MarketData
from engine.html_report import html_report
from engine.report import comparison_table, fold_metrics, render_table
from engine.secrets import redact
from engine.simulation import StrategyRun
from engine.walkforward import WalkForwardResult


def predictions_frame(market: MarketData, wf: WalkForwardResult) -> pd.DataFrame:
    """Each forecast against the close it forecast (empty for the bar after the data)."""
    parts = []
    for symbol, table in wf.forecasts.items():
        actual = market.frames[symbol]["close"].reindex(table["target"]).to_numpy()
        parts.append(pd.DataFrame({"timestamp": table["target"].to_numpy(), "symbol": symbol,
                                   "actual_close": actual,
                                   "predicted_close": table["pred_close"].to_numpy(),
                                   "fold": table["fold"].to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def equity_frame(runs: list[StrategyRun]) -> pd.DataFrame:
    """Every run's equity curve in long form."""
    return pd.concat([pd.DataFrame({"timestamp": r.equity.index, "strategy": r.label,
                                    "symbol": r.symbol, "equity": r.equity.to_numpy()})
                      for r in runs], ignore_index=True)


def curves_by_symbol(runs: list[StrategyRun]) -> dict[str, dict[str, pd.Series]]:
    curves: dict[str, dict[str, pd.Series]] = {}
    for r in runs:
        curves.setdefault(r.symbol, {})[r.label] = r.equity
    return curves


def write_all(out: Path, cfg: Config, market: MarketData, wf: WalkForwardResult,
              runs: list[StrategyRun], report: dict[str, Any]) -> list[Path]:
    """Write the files listed in the module docstring into ``out``; returns their paths."""
    written = []
    predictions_frame(market, wf).to_csv(out / "predictions.csv", index=False,
                                         date_format="%Y-%m-%dT%H:%M:%SZ")
    equity_frame(runs).to_csv(out / "equity.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    table = comparison_table(report["strategies"], cfg.backtest.sort_by)
    table.to_csv(out / "comparison.csv", index=False)
    (out / "comparison.md").write_text(render_table(table, markdown=True))
    (out / "config.yaml").write_text(redact(yaml.safe_dump(cfg.to_dict(), sort_keys=False)))
    closes = {s: market.frames[s]["close"] for s in wf.forecasts}
    per_fold = {s: fold_metrics(wf.forecasts[s], closes[s]) for s in wf.forecasts}
    charts = {
        "equity": plots.equity_chart(curves_by_symbol(runs), out / "equity.png",
                                     cfg.backtest.log_scale),
        "forecast": plots.forecast_chart(closes, wf.forecasts, out / "forecast.png"),
        "folds": plots.folds_chart(per_fold, out / "folds.png"),
    }
    (out / "report.html").write_text(redact(html_report(cfg, report, table, charts)))
    written += [out / n for n in ("predictions.csv", "equity.csv", "comparison.csv",
                                  "comparison.md", "config.yaml", "report.html")]
    return written + list(charts.values())
