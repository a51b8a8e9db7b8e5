"""The sweep's files: trials.csv, returns.parquet, best.yaml, holdout.json, summary.json,
charts and report.html (every field is described in README.md, "Parameter sweeps").

This module only writes: the choice, the holdout run and the selection statistics are
the runner's (``engine.sweep.runner``): it writes the trials' files first
(``write_trials``), then, with what the closing steps found (a ``Closing``), the rest
(``write_closing``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from engine.report import write_json
from engine.sweep import plots
from engine.sweep.html import sweep_html
from engine.sweep.spec import SweepSpec


@dataclass(frozen=True)
class Closing:
    """What the runner's closing steps found, for the files to say."""

    records: list[dict[str, Any]]  # every finished trial's record, in sweep order
    table: pd.DataFrame  # trials.csv (``write_trials``)
    matrix: pd.DataFrame  # per-bar returns on the selection period, one column per trial
    best: dict[str, Any]  # the chosen trial's record
    holdout: dict[str, Any]  # its run on the holdout (``returns``: per-bar returns)
    figures: dict[str, Any]  # PSR, DSR, PBO and the statistics behind them
    selection: pd.DatetimeIndex  # the selection period's bars
    seconds: float


def trials_frame(spec: SweepSpec, records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per trial: its name, parameters, objective, metrics, error and timing."""
    rows = []
    for r in records:
        row = {"trial": r["key"], **{k: _cell(r["params"].get(k)) for k in spec.keys},
               "objective": r["objective"]}
        row.update({f"{k}": v for k, v in r["metrics"].items()})
        row.update({"error": r["error"], "seconds": r["seconds"], "node": r["node"]})
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(value: Any) -> Any:
    return ",".join(map(str, value)) if isinstance(value, list) else value


def write_trials(spec: SweepSpec, out: Path, records: list[dict[str, Any]],
                 matrix: pd.DataFrame) -> pd.DataFrame:
    """Write trials.csv and returns.parquet; returns the trials table."""
    table = trials_frame(spec, records)
    _write_csv(table, out / "trials.csv")
    _write_parquet(matrix, out / "returns.parquet")
    return table


def write_closing(spec: SweepSpec, out: Path, closing: Closing) -> dict[str, Any]:
    """Write holdout.json, best.yaml, the charts, summary.json and report.html into
    ``out``; returns the summary."""
    best, holdout, table = closing.best, dict(closing.holdout), closing.table
    holdout_returns = holdout.pop("returns")
    write_json(out / "holdout.json", holdout)
    best_cfg = spec.trial_config(best["params"], output_dir=str(spec.output_dir / "best"))
    _write_text(out / "best.yaml", yaml.safe_dump(best_cfg.to_dict(), sort_keys=False))
    figures, sel, records = closing.figures, closing.selection, closing.records
    summary = {
        "objective": {**spec.objective.model_dump(), "mode": spec.objective.mode},
        "search": spec.raw.search,
        "trials": len(records), "trials_planned": spec.n_trials(),
        "failed": sum(r["objective"] is None for r in records),
        "best_trial": best["key"], "best_params": best["params"],
        "best_objective": best["objective"],
        "selection": {"start": sel[0].isoformat(), "end": sel[-1].isoformat(),
                      "bars": len(sel), "returns_bars": len(closing.matrix)},
        "psr": figures["psr"], "dsr": figures["dsr"], "pbo": figures["pbo"],
        "statistics": {k: v for k, v in figures.items()
                       if k not in ("psr", "dsr", "pbo", "pbo_logits")},
        "holdout": {k: holdout[k] for k in ("start", "end", "bars", "objective", "metrics")},
        "seconds": round(closing.seconds, 3),
    }
    charts = plots.write_charts(spec, table, closing.matrix, best["key"], holdout_returns, out)
    write_json(out / "summary.json", summary)
    _write_text(out / "report.html", sweep_html(spec, summary, table, charts))
    return summary


def describe(summary: dict[str, Any], out: Path) -> str:
    """The lines printed at the end of a sweep."""
    obj, hold = summary["objective"], summary["holdout"]

    def num(value: Any) -> str:
        return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) \
            else f"{value:.4g}"

    return "\n".join([
        f"{summary['trials']} trials ({summary['failed']} failed); objective {obj['metric']} of "
        f"{obj['strategy']} on {obj['symbol']} ({obj['mode']})",
        f"chosen {summary['best_trial']} {summary['best_params']}: selection "
        f"{num(summary['best_objective'])}, holdout {num(hold['objective'])} "
        f"({hold['bars']} bars from {hold['start'][:10]})",
        f"PSR {num(summary['psr'])}  DSR {num(summary['dsr'])}  PBO {num(summary['pbo'])}",
        f"Written to {out}/",
    ])


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp)
    tmp.replace(path)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
