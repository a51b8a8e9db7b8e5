"""report.html: one self-contained page (charts embedded) describing a run."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from engine.config import Config
from engine.report import forecast_table, format_value

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.85em; }
.meta td { text-align: left; }
"""


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_value(c, v))}</td>"
                         for c, v in zip(frame.columns, row, strict=True)) + "</tr>"
        for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def html_report(cfg: Config, report: Mapping[str, Any], comparison: pd.DataFrame,
                charts: Mapping[str, Path]) -> str:
    """The whole page as a string."""
    run = report["run"]
    data = run["data"]
    meta = [("config", f"{run['config_file']} (sha256 {str(run['config_hash'])[:12]})"),
            ("data", f"{data['start'][:10]} .. {data['end'][:10]}, {data['bars']} bars "
                     f"{data['timeframe']}, symbols {', '.join(data['symbols'])}"),
            ("test period", f"{data['test_start'][:10]} .. {data['end'][:10]} "
                            f"({data['test_bars']} bars, {len(report['folds'])} folds)"),
            ("costs", f"commission {cfg.broker.commission:g}, slippage {cfg.broker.slippage:g}, "
                      f"cash {cfg.broker.cash:,.0f}"),
            ("device", run["device"]),
            ("seconds", ", ".join(f"{k} {v}" for k, v in run["seconds"].items()))]
    meta_rows = "".join(f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(str(v))}</td></tr>"
                        for k, v in meta)
    sections = [
        f"<h1>Backtest report: {html.escape(Path(str(run['config_file'])).name)}</h1>",
        f'<table class="meta">{meta_rows}</table>',
        f"<h2>Strategies (sorted by {html.escape(cfg.backtest.sort_by)})</h2>",
        _table(comparison),
        "<h2>Forecast error beside persistence</h2>",
        "<p>MSE is on the model's target scale (next close over the window's first close, "
        "minus 1); mse_ratio below 1 means the LSTM beat 'next close = this close'.</p>",
        _table(forecast_table(report["forecast"])),
        "<h2>Equity</h2>", _image(charts["equity"], "equity curves and drawdowns"),
        "<h2>Forecast vs actual</h2>", _image(charts["forecast"], "forecast vs actual close"),
        "<h2>Forecast error per fold</h2>", _image(charts["folds"], "MSE per fold"),
        "<h2>Configuration</h2>",
        f"<pre>{html.escape(yaml.safe_dump(cfg.to_dict(), sort_keys=False))}</pre>",
    ]
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Backtest report</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(sections)}</body></html>\n")
