"""The sweep's files: trials.csv, returns.parquet, best.yaml, holdout.json, summary.json,
charts and report.html (every field is described in README.md, "Parameter sweeps")."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from engine.report import trading_metrics, write_json
from engine.simulation import StrategyRun
from engine.sweep import plots, stats
from engine.sweep import trial as trials
from engine.sweep.spec import SweepSpec
from engine.timeframes import periods_per_year


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


def returns_matrix(records: list[dict[str, Any]], root: Path) -> pd.DataFrame:
    """Per-bar returns on the selection period, one column per scored trial."""
    columns = {}
    for r in records:
        if r["objective"] is not None:
            series = trials.read_returns(root / r["key"])
            if series is not None:
                columns[r["key"]] = series
    return pd.DataFrame(columns).fillna(0.0)


def choose(spec: SweepSpec, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The scored trial with the best objective (the first to finish on ties)."""
    scored = [r for r in records if r["objective"] is not None]
    sign = 1.0 if spec.objective.mode == "max" else -1.0
    return max(scored, key=lambda r: sign * r["objective"])


def selection_stats(matrix: pd.DataFrame, best: str, blocks: int) -> dict[str, Any]:
    """PSR and DSR of the chosen trial and the sweep's PBO (None, with why, if impossible)."""
    sharpes = np.array([stats.sharpe_ratio(matrix[c].to_numpy()) for c in matrix])
    result: dict[str, Any] = stats.deflated_sharpe(matrix[best].to_numpy(), sharpes)
    try:
        pbo = stats.pbo_cscv(matrix.to_numpy(), blocks=blocks)
        result.update(pbo=pbo.pbo, pbo_splits=pbo.n_splits, pbo_blocks=blocks,
                      pbo_logits=pbo.logits.tolist(), pbo_note=None)
    except ValueError as exc:
        result.update(pbo=None, pbo_splits=0, pbo_blocks=blocks, pbo_logits=[],
                      pbo_note=str(exc))
    return result


def holdout_result(spec: SweepSpec, split, best: dict[str, Any]) -> dict[str, Any]:
    """Run the chosen config once over all the data; score only the holdout bars."""
    cfg = spec.trial_config(best["params"])
    _, run, wf = trials.score(cfg, split.full, spec.objective)
    start = split.holdout_start
    before = run.equity.index[run.equity.index < start]
    first = before[-1] if len(before) else start  # returns from the last selection close on
    equity = run.equity[run.equity.index >= first]
    fills = run.fills[run.fills["time"] >= start] if not run.fills.empty else run.fills
    trades = [t for t in run.trades if t["exit_time"] is None or _utc(t["exit_time"]) >= start]
    part = StrategyRun(run.label, run.symbol, equity, run.position.loc[equity.index], fills,
                       trades, float(fills["commission"].sum()) if len(fills) else 0.0)
    metrics = trading_metrics(part, periods_per_year(cfg.data.timeframe))
    from engine.report import forecast_metrics

    symbol = spec.objective.symbol
    scored = trials.objective_forecasts(cfg, wf, spec.objective)
    metrics["mse_ratio"] = None
    if scored is not None:
        table, target = scored
        metrics["mse_ratio"] = forecast_metrics(table[table["target"] >= start],
                                                split.full.frames[symbol]["close"],
                                                target)["mse_ratio"]
    index = split.full.index
    return {"trial": best["key"], "params": best["params"],
            "start": start.isoformat(), "end": index[-1].isoformat(), "bars": split.holdout_bars,
            "objective": metrics.get(spec.objective.metric), "metrics": metrics,
            "selection_objective": best["objective"],
            "returns": equity.pct_change().iloc[1:]}


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp


def finish(spec: SweepSpec, out: Path, split, records: list[dict[str, Any]], root: Path,
           seconds: float, progress: bool) -> dict[str, Any]:
    """Choose, test on the holdout and write every file of the sweep."""
    table = trials_frame(spec, records)
    _write_csv(table, out / "trials.csv")
    matrix = returns_matrix(records, root)
    _write_parquet(matrix, out / "returns.parquet")
    best = choose(spec, records)
    if progress:
        print(f"chosen {best['key']} {best['params']}; running it once on the holdout",
              flush=True)
    holdout = holdout_result(spec, split, best)
    holdout_returns = holdout.pop("returns")
    write_json(out / "holdout.json", holdout)
    best_cfg = spec.trial_config(best["params"], output_dir=str(spec.output_dir / "best"))
    _write_text(out / "best.yaml", yaml.safe_dump(best_cfg.to_dict(), sort_keys=False))
    figures = selection_stats(matrix, best["key"], spec.raw.pbo_blocks)
    sel = split.selection.index
    summary = {
        "objective": {**spec.objective.model_dump(), "mode": spec.objective.mode},
        "search": spec.raw.search,
        "trials": len(records), "trials_planned": spec.n_trials(),
        "failed": sum(r["objective"] is None for r in records),
        "best_trial": best["key"], "best_params": best["params"],
        "best_objective": best["objective"],
        "selection": {"start": sel[0].isoformat(), "end": sel[-1].isoformat(),
                      "bars": len(sel), "returns_bars": len(matrix)},
        "psr": figures["psr"], "dsr": figures["dsr"], "pbo": figures["pbo"],
        "statistics": {k: v for k, v in figures.items()
                       if k not in ("psr", "dsr", "pbo", "pbo_logits")},
        "holdout": {k: holdout[k] for k in ("start", "end", "bars", "objective", "metrics")},
        "seconds": round(seconds, 3),
    }
    charts = plots.write_charts(spec, table, matrix, best["key"], holdout_returns, out)
    write_json(out / "summary.json", summary)
    from engine.sweep.html import sweep_html

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
