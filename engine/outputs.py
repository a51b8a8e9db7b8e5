"""Everything a backtest writes into its output directory, besides report.json.

- predictions.csv: timestamp, symbol, actual_close, predicted_close, fold
- equity.csv: timestamp, strategy, symbol, equity (read back by ``engine.compare``)
- trades.csv: one row per round trip of every (strategy, symbol)
- fills.csv: one row per fill, with the bar whose close decided it
- comparison.csv / comparison.md: one row per (strategy, symbol), best first
- equity.png, forecast.png, folds.png, diagnostics.png: the charts
- report.html: one self-contained interactive page with the config, tables and charts
- models/: each fold's ``.keras`` model with its JSON settings (written by the walk-forward)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from engine.config import Config
from engine.data import MarketData
from engine.report import charts as plots
from engine.report import comparison_table, fills_frame, fold_metrics, render_table, trades_frame
from engine.report.metrics import scored_forecasts
from engine.report.page import html_report
from engine.secrets import redact
from engine.simulation import StrategyRun
from engine.walkforward import WalkForwardResult


def predictions_frame(market: MarketData, wf: WalkForwardResult,
                      named: bool = False) -> pd.DataFrame:
    """Each forecast against the close it forecast (empty for the bar after the data).

    With ``named`` (a ``forecasters:`` config) there is a row per forecaster and bar,
    the forecaster's name first; a ``model:`` config keeps the columns it always had.
    """
    parts = []
    for name, result in wf.by_name.items():
        for symbol, table in result.forecasts.items():
            actual = market.frames[symbol]["close"].reindex(table["target"]).to_numpy()
            part = pd.DataFrame({"timestamp": table["target"].to_numpy(), "symbol": symbol,
                                 "actual_close": actual,
                                 "predicted_close": table["pred_close"].to_numpy(),
                                 "fold": table["fold"].to_numpy()})
            if named:
                part.insert(0, "forecaster", name)
            parts.append(part)
    columns = (["forecaster"] if named else []) + ["timestamp", "symbol", "actual_close",
                                                   "predicted_close", "fold"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


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


def fills_by_run(runs: list[StrategyRun]) -> dict[tuple[str, str], pd.DataFrame]:
    return {(r.label, r.symbol): r.fills for r in runs}


def write_all(out: Path, cfg: Config, market: MarketData, wf: WalkForwardResult,
              runs: list[StrategyRun], report: dict[str, Any]) -> list[Path]:
    """Write the files listed in the module docstring into ``out``; returns their paths."""
    written = []
    predictions_frame(market, wf, named=cfg.forecasters is not None).to_csv(
        out / "predictions.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    equity_frame(runs).to_csv(out / "equity.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    trades_frame(runs).to_csv(out / "trades.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    fills_frame(runs).to_csv(out / "fills.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    table = comparison_table(report["strategies"], cfg.backtest.sort_by)
    table.to_csv(out / "comparison.csv", index=False)
    (out / "comparison.md").write_text(render_table(table, markdown=True))
    (out / "config.yaml").write_text(redact(yaml.safe_dump(cfg.to_dict(), sort_keys=False)))
    closes = {s: frame["close"] for s, frame in market.frames.items()}
    charts = {
        "equity": plots.equity_chart(curves_by_symbol(runs), out / "equity.png",
                                     cfg.backtest.log_scale or None, fills=fills_by_run(runs)),
    }
    if wf.by_name:  # the first forecaster's charts (a run may fit none)
        first = next(iter(wf.by_name.values()))
        target = first.target
        per_fold = {s: fold_metrics(t, closes[s], target) for s, t in wf.forecasts.items()}
        charts["forecast"] = plots.forecast_chart(closes, wf.forecasts, out / "forecast.png")
        charts["folds"] = plots.folds_chart(per_fold, out / "folds.png", first.name)
        charts["diagnostics"] = plots.diagnostics_chart(
            {s: scored_forecasts(t, closes[s], target) for s, t in wf.forecasts.items()},
            {s: report["diagnostics"][s]["by_strength"] for s in wf.forecasts},
            out / "diagnostics.png")
    # html_report redacts its own content (not plotly's inlined library)
    (out / "report.html").write_text(html_report(cfg, report, table, charts, runs, closes,
                                                 wf))
    written += [out / n for n in ("predictions.csv", "equity.csv", "trades.csv", "fills.csv",
                                  "comparison.csv",
                                  "comparison.md", "config.yaml", "report.html")]
    return written + list(charts.values())
