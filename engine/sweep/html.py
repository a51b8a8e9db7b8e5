"""report.html of a sweep: one self-contained page (charts embedded)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from engine.report.page import STYLE, image_html, table_html
from engine.sweep.spec import SweepSpec


def sweep_html(spec: SweepSpec, summary: Mapping[str, Any], table: pd.DataFrame,
               charts: Mapping[str, Path]) -> str:
    """The whole page as a string."""
    obj, hold, st = summary["objective"], summary["holdout"], summary["statistics"]
    sel = summary["selection"]
    meta = [
        ("sweep file", spec.label),
        ("objective", f"{obj['metric']} of {obj['strategy']} on {obj['symbol']} ({obj['mode']})"),
        ("search", f"{summary['search']}, {summary['trials']} trials "
                   f"({summary['failed']} failed)"),
        ("selection period", f"{sel['start'][:10]} .. {sel['end'][:10]} ({sel['bars']} bars)"),
        ("holdout", f"{hold['start'][:10]} .. {hold['end'][:10]} ({hold['bars']} bars)"),
        ("chosen trial", f"{summary['best_trial']} {summary['best_params']}"),
        ("objective", f"selection {_num(summary['best_objective'])}, "
                      f"holdout {_num(hold['objective'])}"),
        ("PSR (vs 0)", _num(summary["psr"])),
        ("DSR", f"{_num(summary['dsr'])} (expected best Sharpe of {st['n_trials']} unskilled "
                f"trials: {_num(st['sr_star'])} per bar)"),
        ("PBO", f"{_num(summary['pbo'])} ({st['pbo_splits']} CSCV splits of "
                f"{st['pbo_blocks']} blocks)" + (f"; {st['pbo_note']}" if st["pbo_note"] else "")),
    ]
    rows = "".join(f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(str(v))}</td></tr>"
                   for k, v in meta)
    shown = table.drop(columns=[c for c in ("node",) if c in table.columns])
    sections = [
        f"<h1>Sweep report: {html.escape(Path(spec.label).name)}</h1>",
        f'<table class="meta">{rows}</table>',
        "<p>PSR: probability that the chosen trial's true Sharpe ratio is above 0. DSR: the "
        "same against the best Sharpe ratio expected from this many trials by luck alone. "
        "PBO: share of cross-validation splits in which the in-sample best trial ranked in "
        "the bottom half out of sample. The holdout was never seen while choosing.</p>",
        "<h2>Curves</h2>", image_html(charts["curves"], "selection curves and holdout"),
        "<h2>Objective by parameter</h2>",
        image_html(charts["by_parameter"], "objective by parameter"),
    ]
    if "heatmap" in charts:
        sections += ["<h2>Heatmap</h2>", image_html(charts["heatmap"], "objective heatmap")]
    sections += ["<h2>Trials</h2>", table_html(shown.astype(object).where(shown.notna(), None))]
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Sweep report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>\n")


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
