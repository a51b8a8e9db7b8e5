"""report.html: one self-contained, interactive page describing a run.

plotly's JavaScript is inlined once in the page's head, so the page opens from disk with
no network at all. Wide tables scroll sideways inside their own box.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.offline
import yaml

from engine.config import Config
from engine.report import interactive
from engine.report.charts import strategy_colors
from engine.report.lab_page import lab_sections
from engine.report.metrics import scored_forecasts
from engine.report.tables import forecast_table, format_value, strength_table
from engine.secrets import redact
from engine.simulation import StrategyRun

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1300px;
       padding: 0 1em; color: #222; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; white-space: nowrap; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.7em; text-align: right; }
th { position: sticky; top: 0; background: #fafafa; }
td.text, th.text { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.85em; }
.meta td { text-align: left; white-space: normal; }
.plot { width: 100%; margin: 0.5em 0 1.5em; }
.note { color: #555; font-size: 0.9em; max-width: 75em; }
"""


def table_html(frame: pd.DataFrame) -> str:
    text = [not pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    cls = [' class="text"' if t else "" for t in text]
    head = "".join(f"<th{k}>{html.escape(str(c))}</th>" for c, k in
                   zip(frame.columns, cls, strict=True))
    body = "".join(
        "<tr>" + "".join(f"<td{k}>{html.escape(format_value(c, v))}</td>"
                         for c, v, k in zip(frame.columns, row, cls, strict=True)) + "</tr>"
        for row in frame.itertuples(index=False))
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def image_html(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _plot(fig: go.Figure, div_id: str) -> str:
    body = fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config=interactive.CONFIG)
    return f'<div class="plot">{body}</div>'


def _meta(cfg: Config, report: Mapping[str, Any]) -> str:
    run = report["run"]
    data = run["data"]
    rows = [("config", f"{run['config_file']} (sha256 {str(run['config_hash'])[:12]})"),
            ("data", f"{data['start'][:10]} .. {data['end'][:10]}, {data['bars']} bars "
                     f"{data['timeframe']}, symbols {', '.join(data['symbols'])}"),
            ("test period", f"{data['test_start'][:10]} .. {data['end'][:10]} "
                            f"({data['test_bars']} bars, {len(report['folds'])} folds)"),
            ("costs", f"commission {cfg.broker.commission:g}, slippage {cfg.broker.slippage:g}, "
                      f"cash {cfg.broker.cash:,.0f}"),
            ("device", run["device"]),
            ("seconds", ", ".join(f"{k} {v}" for k, v in run["seconds"].items()))]
    cells = "".join(f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows)
    return f'<table class="meta">{cells}</table>'


def _market_sections(runs: Sequence[StrategyRun], closes: Mapping[str, pd.Series],
                     forecasts: Mapping[str, pd.DataFrame], colors: Mapping[str, str]) -> list:
    """One linked figure per (account, instrument): a symbol's own runs, or each symbol
    of a portfolio with the portfolio's equity below its price."""
    parts = ["<h2>Price, trades, equity and drawdown</h2>",
             '<p class="note">Drag to zoom (the three panels move together), double-click to '
             "reset; click a legend entry to hide it. Triangles are fills: up = buy, "
             "down = sell, in the strategy's colour.</p>"]
    panels = []
    for account in dict.fromkeys(r.symbol for r in runs):
        mine = [r for r in runs if r.symbol == account]
        instruments = [account] if account in closes else \
            [s for s in dict.fromkeys(s for r in mine for s in _symbols(r)) if s in closes]
        panels += [(account, symbol, mine) for symbol in instruments or [account]]
    for n, (account, symbol, mine) in enumerate(panels):
        start = mine[0].equity.index[0]
        close = closes[symbol][closes[symbol].index >= start] if symbol in closes else None
        forecast = None
        if symbol in forecasts:
            table = forecasts[symbol]
            forecast = pd.Series(table["pred_close"].to_numpy(),
                                 pd.DatetimeIndex(table["target"]))
        fills = {r.label: r.fills[r.fills["symbol"] == symbol] if "symbol" in r.fills else r.fills
                 for r in mine if not r.fills.empty}
        title = symbol if symbol == account else f"{symbol} in the {account}"
        fig = interactive.market_figure(title, {r.label: r.equity for r in mine}, fills, colors,
                                        close, forecast)
        parts.append(_plot(fig, f"market-{n}"))
    return parts


def _symbols(run: StrategyRun) -> list[str]:
    position = run.position
    return list(position.columns) if isinstance(position, pd.DataFrame) else [run.symbol]


def _monthly_sections(runs: Sequence[StrategyRun]) -> list:
    parts = ["<h2>Monthly returns</h2>"]
    for n, r in enumerate(runs):
        parts.append(_plot(interactive.monthly_heatmap(r.label, r.symbol, r.equity),
                           f"monthly-{n}"))
    return parts


def _diagnostic_sections(report: Mapping[str, Any], closes: Mapping[str, pd.Series],
                         forecasts: Mapping[str, pd.DataFrame]) -> list:
    diagnostics = report.get("diagnostics", {})
    parts = [
        "<h2>Forecast error and significance</h2>",
        '<p class="note">The first forecaster\'s. MSE is on its target scale (for the '
        "tutorial's window_ratio: next close over the window's first close, minus 1); "
        "mse_ratio below 1 means it beat persistence ('next "
        "close = this close'). dm_stat is the Diebold-Mariano statistic on squared errors "
        "(Harvey-Leybourne-Newbold corrected; negative = the model's errors are smaller), "
        "dm_p_better its one-sided p-value for 'the model is better', dm_p_two_sided the "
        "two-sided one. direction_p is the binomial p-value of the directional accuracy "
        "against direction_baseline, the accuracy of always calling the more frequent "
        "direction.</p>",
        table_html(forecast_table(report["forecast"], diagnostics))]
    for n, symbol in enumerate(forecasts):
        if symbol not in diagnostics:
            continue
        parts += [f"<h3>{html.escape(symbol)}: hit rate by size of the predicted move</h3>",
                  '<p class="note">Forecasts split into quintiles of |predicted return| '
                  "(1 = smallest); mean_signed_return is the realised return in the "
                  "predicted direction, before costs.</p>",
                  table_html(strength_table(diagnostics[symbol]))]
        scored = scored_forecasts(forecasts[symbol], closes[symbol])
        parts.append(_plot(interactive.scatter_figure(symbol, scored["pred_return"],
                                                      scored["true_return"]), f"scatter-{n}"))
    return parts


def html_report(cfg: Config, report: Mapping[str, Any], comparison: pd.DataFrame,
                charts: Mapping[str, Path], runs: Sequence[StrategyRun],
                closes: Mapping[str, pd.Series], wf: Any) -> str:
    """The whole page as a string, known secrets blanked out of its content.

    Args:
        cfg: The run's config (shown at the end).
        report: The content of report.json.
        comparison: The comparison table, best first.
        charts: PNG paths; ``folds`` is embedded.
        runs: Every (strategy, symbol) run.
        closes: ``{symbol: closes}`` over all bars.
        wf: The walk-forward result (every forecaster's forecasts).
    """
    forecasts = wf.forecasts
    colors = strategy_colors(r.label for r in runs)
    sections = [
        f"<h1>Backtest report: {html.escape(Path(str(report['run']['config_file'])).name)}</h1>",
        _meta(cfg, report),
        f"<h2>Strategies (sorted by {html.escape(cfg.backtest.sort_by)})</h2>",
        table_html(comparison),
        *_market_sections(runs, closes, forecasts, colors),
        *_monthly_sections(runs),
        *(_diagnostic_sections(report, closes, forecasts) if forecasts else []),
        *lab_sections(report, wf, closes, table_html, _plot),
        *(["<h2>Forecast error per fold</h2>", image_html(charts["folds"], "MSE per fold")]
          if "folds" in charts else []),
        "<h2>Configuration</h2>",
        f"<pre>{html.escape(yaml.safe_dump(cfg.to_dict(), sort_keys=False))}</pre>",
    ]
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>Backtest report</title><style>{STYLE}</style>"
            f"<script>{plotly.offline.get_plotlyjs()}</script></head>"
            f"<body>{redact(''.join(sections))}</body></html>\n")
