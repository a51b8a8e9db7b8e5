"""report.html: one self-contained, interactive page describing a run.

plotly's JavaScript is inlined once in the page's head, so the page opens from disk with
no network at all. The charts use scatter traces only, so the page carries plotly's
smallest bundle ("basic", 1.2 MB, shipped in ``assets/`` with its licence) instead of
the full 4.8 MB library, whenever that bundle is the plotly.js version the installed
plotly writes figures for (else the full library). Wide tables scroll sideways inside
their own box, with their first column fixed and a shadow on the side that has more.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.offline
import yaml

from engine.config import Config
from engine.execution import StrategyRun
from engine.report import interactive
from engine.report.charts import strategy_colors
from engine.report.lab_page import lab_sections
from engine.report.metrics import scored_forecasts
from engine.report.roundtrips import trades_section
from engine.report.tables import forecast_table, format_value, strength_table
from engine.secrets import redact

ASSETS = Path(__file__).parent / "assets"
BASIC_BUNDLE = ASSETS / "plotly-basic.min.js"  # plotly.js-basic-dist-min, scatter/bar/pie
BASIC_VERSION = "4.1.1"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1500px;
       padding: 0 0.75em; color: #222; }
.scroll { overflow-x: auto; max-width: 100%; position: relative;
          background: linear-gradient(to right, #fff 30%, rgba(255,255,255,0)),
                      linear-gradient(to left, #fff 30%, rgba(255,255,255,0)) 100% 0,
                      radial-gradient(farthest-side at 0 50%, rgba(0,0,0,.25), rgba(0,0,0,0)),
                      radial-gradient(farthest-side at 100% 50%, rgba(0,0,0,.25),
                                      rgba(0,0,0,0)) 100% 0;
          background-repeat: no-repeat; background-size: 40px 100%, 40px 100%, 14px 100%,
                                                          14px 100%;
          background-attachment: local, local, scroll, scroll; }
.scroll::-webkit-scrollbar { height: 10px; width: 10px; }
.scroll::-webkit-scrollbar-thumb { background: #c4c4c4; border-radius: 5px; }
.scroll::-webkit-scrollbar-track { background: #f2f2f2; }
.scroll.tall { max-height: 32em; overflow-y: auto; }
.hint { display: none; color: #777; font-size: 0.8em; margin: 0.2em 0 0; }
.scroll.overflowing + .hint { display: block; }
table { border-collapse: separate; border-spacing: 0; margin: 0.6em 0; font-size: 0.85em;
        white-space: nowrap; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.36em; text-align: right; }
th { position: sticky; top: 0; background: #fafafa; white-space: normal;
     vertical-align: bottom; max-width: 7em; z-index: 1; }
tbody td:first-child, thead th:first-child { position: sticky; left: 0; z-index: 2;
     box-shadow: inset -1px 0 0 #ddd; }
tbody td:first-child { background: #fff; white-space: normal; min-width: 7em;
                        max-width: 14em; }
thead th:first-child { z-index: 3; }
td.text, th.text { text-align: left; }
td.up { color: #1a7f37; } td.down { color: #c62828; }
table.trades th { cursor: pointer; user-select: none; }
table.months td { min-width: 3.2em; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.85em; }
.meta td { text-align: left; white-space: normal; }
.meta td:first-child { position: static; box-shadow: none; }
.plot { width: 100%; margin: 0.5em 0 1.5em; }
.note { color: #555; font-size: 0.9em; max-width: 75em; }
.controls label { margin-right: 1.2em; font-size: 0.9em; }
.stats { font-size: 0.9em; margin: 0.5em 0 0; }
"""


def _header(name: str) -> str:
    """A column name that may wrap after its underscores (information_ratio)."""
    return html.escape(str(name)).replace("_", "_<wbr>")


def _cell(text: str, first: bool) -> str:
    """A cell's text; the first column's labels may wrap after a comma
    (``sma_cross(fast=20,`` / ``slow=100)``)."""
    text = html.escape(text)
    return text.replace(",", ",<wbr>") if first else text


def table_html(frame: pd.DataFrame) -> str:
    """A table in a box that scrolls sideways when it is wider than the page, its first
    column fixed while the rest scrolls, headers wrapping after underscores."""
    text = [not pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    cls = [' class="text"' if t else "" for t in text]
    head = "".join(f"<th{k}>{_header(c)}</th>" for c, k in
                   zip(frame.columns, cls, strict=True))
    body = "".join(
        "<tr>" + "".join(f"<td{k}>{_cell(format_value(c, v), first=i == 0)}</td>"
                         for i, (c, v, k) in enumerate(zip(frame.columns, row, cls,
                                                           strict=True))) + "</tr>"
        for row in frame.itertuples(index=False))
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>"
            '<p class="hint">The table is wider than the window: scroll it sideways (the '
            "first column stays).</p>")


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
        fills = {r.label: _fills_in(r, symbol) for r in mine if r.fills}
        title = symbol if symbol == account else f"{symbol} in the {account}"
        fig = interactive.market_figure(title, {r.label: r.equity for r in mine}, fills, colors,
                                        close, forecast)
        parts.append(_plot(fig, f"market-{n}"))
    return parts


def _fills_in(run: StrategyRun, symbol: str) -> pd.DataFrame:
    """The run's fills of ``symbol`` as a table."""
    table = run.fill_table()
    return table[table["symbol"] == symbol]


def _symbols(run: StrategyRun) -> list[str]:
    position = run.position
    return list(position.columns) if isinstance(position, pd.DataFrame) else [run.symbol]


def _monthly_sections(runs: Sequence[StrategyRun]) -> list:
    parts = ["<h2>Monthly returns</h2>",
             '<p class="note">Per calendar month, in %: green up, red down (the first month '
             "from the start of the test period).</p>"]
    for n, r in enumerate(runs):
        parts += [f"<h3>{html.escape(r.label)} on {html.escape(r.symbol)}</h3>",
                  monthly_table(interactive.monthly_returns(r.equity), f"monthly-{n}")]
    return parts


def monthly_table(table: pd.DataFrame, table_id: str) -> str:
    """Years x months of returns as a table coloured from red (the worst month) through
    white to green (the best)."""
    values = 100 * table.to_numpy(dtype=float)
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    head = "".join(f"<th>{m}</th>" for m in ("year", *interactive.MONTHS))
    rows = []
    for year, row in zip(table.index, values, strict=True):
        cells = "".join(
            f'<td style="background:{_heat(v, limit)}">{v:.1f}</td>' if np.isfinite(v)
            else "<td></td>" for v in row)
        rows.append(f'<tr><td class="text">{year}</td>{cells}</tr>')
    return (f'<div class="scroll"><table class="months" id="{table_id}"><thead><tr>{head}'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def _heat(value: float, limit: float) -> str:
    """Red (-limit) through white (0) to green (+limit), as a CSS colour."""
    share = min(abs(value) / limit, 1.0) if limit > 0 else 0.0
    red, green, blue = (214, 39, 40) if value < 0 else (26, 152, 80)
    mix = [round(255 + (c - 255) * 0.75 * share) for c in (red, green, blue)]
    return f"rgb({mix[0]},{mix[1]},{mix[2]})"


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
        trades_section(runs),
        *_monthly_sections(runs),
        *(_diagnostic_sections(report, closes, forecasts) if forecasts else []),
        *lab_sections(report, wf, closes, table_html, _plot),
        *(["<h2>Forecast error per fold</h2>", image_html(charts["folds"], "MSE per fold")]
          if "folds" in charts else []),
        "<h2>Configuration</h2>",
        f"<pre>{html.escape(yaml.safe_dump(cfg.to_dict(), sort_keys=False))}</pre>",
    ]
    script = (ASSETS / "page.js").read_text()
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>Backtest report</title><style>{STYLE}</style>"
            f"<script>{plotly_js()}</script></head>"
            f"<body>{redact(''.join(sections))}<script>{script}</script></body></html>\n")


def plotly_js() -> str:
    """plotly's JavaScript for the page: the shipped basic bundle when it is the plotly.js
    major version the installed plotly writes figures for, else plotly's full library."""
    wanted = plotly.offline.get_plotlyjs_version()
    if wanted.split(".")[0] == BASIC_VERSION.split(".")[0] and BASIC_BUNDLE.is_file():
        return BASIC_BUNDLE.read_text()
    return plotly.offline.get_plotlyjs()
