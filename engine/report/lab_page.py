"""The forecaster lab's part of report.html: forecasters side by side, their tests, the
seeds' spread, and the SPA test of the strategies against buy-and-hold."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from engine.report.forecasters import PERSISTENCE, cumulative_gain, return_errors
from engine.report.tables import format_value

NOTE = ('<p class="note">Every forecaster and persistence ("next close = this close") on one '
        "scale: the squared error of the predicted next-bar return, on the bars every "
        "forecaster forecast. mse_ratio below 1 beats persistence. In the Diebold-Mariano "
        "matrix a negative statistic means the row's errors are smaller than the column's; "
        "p_holm is the two-sided p-value after Holm's correction over all pairs. The model "
        "confidence set (Hansen, Lunde and Nason 2011, 10%) holds the best forecaster with "
        "90% probability: names outside it are worse than the best, beyond chance.</p>")


def lab_sections(report: Mapping[str, Any], wf: Any, closes: Mapping[str, pd.Series],
                 table_html: Any, plot_html: Any) -> list[str]:
    """The page sections of the forecasters (none when fewer than one ran) and of SPA."""
    parts: list[str] = []
    compared = report.get("forecast_comparison", {})
    if compared:
        parts += ["<h2>Forecasters compared</h2>", NOTE,
                  table_html(forecasters_table(report))]
        for n, (symbol, entry) in enumerate(compared.items()):
            parts += [f"<h3>{html.escape(symbol)}: Diebold-Mariano matrix (statistic, "
                      "p_holm)</h3>", table_html(dm_table(entry)),
                      f'<p class="note">{html.escape(_mcs_line(entry))}</p>']
            errors = return_errors(wf, closes, symbol)
            parts.append(plot_html(gain_figure(symbol, cumulative_gain(errors)),
                                   f"gain-{n}"))
    spreads = [r for r in report.get("strategies", []) if r.get("seed_spread")]
    if spreads:
        parts += ["<h2>Seeds</h2>", '<p class="note">Each strategy on a forecaster with '
                  "several seeds, traded on each seed's forecast alone: if the spread is "
                  "wide, the mean forecast's result owes much to the seeds.</p>",
                  table_html(spread_table(spreads))]
    if report.get("spa"):
        parts += ["<h2>Superior predictive ability</h2>",
                  '<p class="note">Hansen\'s SPA test (consistent p-value, stationary '
                  "bootstrap): is the best strategy's mean return above buy-and-hold's "
                  "beyond what trying every strategy of the run would give by chance?</p>",
                  table_html(spa_table(report["spa"]))]
    return parts


def forecasters_table(report: Mapping[str, Any]) -> pd.DataFrame:
    """One row per (forecaster, symbol): kind, target, errors and the tests."""
    rows = []
    for name, per_symbol in report["forecasters"].items():
        for symbol, m in per_symbol.items():
            common = report["forecast_comparison"][symbol]
            dm = m["diagnostics"]["diebold_mariano"]
            rows.append({"forecaster": name, "kind": m["kind"], "target": m["target"],
                         "symbol": symbol, "n": m["n"], "mse_ratio": m["mse_ratio"],
                         "return_mse_ratio": common["mse_ratio"][name],
                         "directional_accuracy": m["directional_accuracy"],
                         "dm_p_better": dm["p_value_model_better"],
                         "in_mcs": "yes" if name in (common["model_confidence_set"] or
                                                     {}).get("included", []) else "no"})
    return pd.DataFrame(rows)


def dm_table(entry: Mapping[str, Any]) -> pd.DataFrame:
    """The pairwise Diebold-Mariano matrix as text cells."""
    matrix = entry["diebold_mariano"]
    names = list(matrix)
    rows = []
    for a in names:
        row = {"": a}
        for b in names:
            test = matrix[a].get(b)
            row[b] = "" if test is None or test["statistic"] is None else \
                f"{test['statistic']:.2f} ({format_value('p', test['p_holm'])})"
        rows.append(row)
    return pd.DataFrame(rows)


def _mcs_line(entry: Mapping[str, Any]) -> str:
    mcs = entry.get("model_confidence_set")
    if not mcs:
        return "Too few forecasts for the model confidence set."
    inside = ", ".join(mcs["included"])
    with_persistence = " (persistence among them)" if PERSISTENCE in mcs["included"] else ""
    return f"Model confidence set at {mcs['size']:.0%}: {inside}{with_persistence}."


def spread_table(rows: list[Mapping[str, Any]]) -> pd.DataFrame:
    out = []
    for r in rows:
        spread = r["seed_spread"]
        ret, sharpe = spread["total_return"] or {}, spread["sharpe"] or {}
        out.append({"strategy": r["strategy"], "symbol": r["symbol"], "seeds": spread["seeds"],
                    "total_return": r["total_return"], "min_return": ret.get("min"),
                    "median_return": ret.get("median"), "max_return": ret.get("max"),
                    "sharpe": r["sharpe"], "min_sharpe": sharpe.get("min"),
                    "median_sharpe": sharpe.get("median"), "max_sharpe": sharpe.get("max")})
    return pd.DataFrame(out)


def spa_table(spa: Mapping[str, Any]) -> pd.DataFrame:
    return pd.DataFrame([{"symbol": s, "benchmark": e["benchmark"], "best": e["best"],
                          "p_value": e["p_value"], "n": e["n"]} for s, e in spa.items()])


def gain_figure(symbol: str, gain: pd.DataFrame) -> go.Figure:
    """Cumulative squared-error difference against persistence, one line per forecaster."""
    fig = go.Figure()
    for name in gain.columns:
        fig.add_trace(go.Scatter(x=gain.index, y=gain[name].to_numpy(), name=name))
    fig.add_hline(y=0, line={"color": "#888", "width": 1})
    fig.update_layout(title=f"{symbol}: where each forecaster gains (up) or loses (down) "
                            "against persistence", height=380,
                      yaxis_title="cumulative squared-error difference",
                      margin={"l": 60, "r": 20, "t": 50, "b": 40})
    return fig
