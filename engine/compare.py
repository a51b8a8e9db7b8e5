"""``python -m engine.compare DIR [DIR ...]``: one table and one chart over earlier runs.

Reads each run directory's report.json and equity.csv (written by ``engine.backtest``),
prints one comparison table of every (run, strategy, symbol), and saves it as Markdown
and CSV together with an overlaid equity chart (one colour per strategy in every panel,
buys and sells marked from trades.csv/fills.csv where the run has them). Runs whose test
period, timeframe or costs differ from the first run's are flagged in the table's
``differs`` column: their numbers are not like for like. A run written by an older
version (no trades.csv or fills.csv, fewer metrics) still opens, with a one-line note of
what it lacks.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from engine.cli import run_cli
from engine.errors import DataError
from engine.metric_names import METRICS
from engine.report import TABLE_COLUMNS, comparison_table, render_table, sort_table
from engine.report.charts import equity_chart, strategy_colors
from engine.report.console import (
    TRADING_PRIORITY,
    console_table,
    fit_table,
    left_out,
    not_shown,
)
from engine.report.tables import CARRY_COLUMNS


@dataclass
class SavedRun:
    """One earlier run, read back from its directory."""

    name: str
    path: Path
    report: dict[str, Any]
    equity: pd.DataFrame
    fills: pd.DataFrame | None = None
    missing: tuple[str, ...] = ()

    @property
    def conditions(self) -> dict[str, Any]:
        """What must match for results to be comparable."""
        data, broker = self.report["run"]["data"], self.report["config"]["broker"]
        return {"test period": f"{data['test_start'][:10]}..{data['end'][:10]}",
                "timeframe": data["timeframe"], "commission": broker["commission"],
                "slippage": broker["slippage"], "cash": broker["cash"]}


def read_run(path: Path) -> SavedRun:
    """Read one run directory.

    Raises:
        DataError: The directory has no readable report.json or equity.csv.
    """
    report_file, equity_file = path / "report.json", path / "equity.csv"
    if not report_file.is_file():
        raise DataError(f"{path}: no report.json here; pass directories written by "
                        "python -m engine.backtest")
    try:
        report = json.loads(report_file.read_text())
        equity = pd.read_csv(equity_file, parse_dates=["timestamp"])
        report["run"]["data"], report["config"]["broker"], report["strategies"]
        missing = {"timestamp", "strategy", "symbol", "equity"} - set(equity.columns)
        if missing:
            raise KeyError(f"equity.csv lacks {', '.join(sorted(missing))}")
    except FileNotFoundError:
        raise DataError(f"{path}: equity.csv is missing; re-run the backtest") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{report_file}: not a report written by this engine "
                        f"({type(exc).__name__}: {exc})") from None
    fills = _read_fills(path / "fills.csv")
    missing = tuple(name for name in ("trades.csv", "fills.csv") if not (path / name).is_file())
    return SavedRun(path.name, path, report, equity, fills, missing)


def _read_fills(path: Path) -> pd.DataFrame | None:
    """A run's fills, or None when the file is absent or not in the expected layout."""
    if not path.is_file():
        return None
    try:
        fills = pd.read_csv(path, parse_dates=["time"])
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    return fills if {"strategy", "symbol", "side"} <= set(fills.columns) else None


def missing_notes(runs: list[SavedRun]) -> list[str]:
    """One line per run from an older version, naming what it lacks."""
    notes = []
    for run in runs:
        # carry (borrow interest) did not exist before: such a run paid none, no note
        absent_metrics = [c for c in TABLE_COLUMNS if c not in CARRY_COLUMNS
                          and run.report["strategies"] and c not in run.report["strategies"][0]]
        lacks = list(run.missing) + ([f"metrics {', '.join(absent_metrics)}"]
                                     if absent_metrics else [])
        if lacks:
            notes.append(f"note: {run.name} was written by an older version and has no "
                         f"{'; no '.join(lacks)} (shown as '-'; re-run its backtest to fill them)")
    return notes


def _unique_names(runs: list[SavedRun]) -> None:
    names = [r.name for r in runs]
    for run in runs:
        if names.count(run.name) > 1:
            run.name = str(run.path)


def comparison(runs: list[SavedRun], sort_by: str) -> pd.DataFrame:
    """Every (run, strategy, symbol) row, with a ``differs`` column against the first run."""
    reference = runs[0].conditions
    rows = []
    for run in runs:
        differs = "; ".join(f"{k} {v}" for k, v in run.conditions.items() if v != reference[k])
        table = comparison_table(run.report["strategies"], sort_by)
        table.insert(0, "run", run.name)
        table["differs"] = differs
        rows.append(table)
    return sort_table(pd.concat(rows, ignore_index=True), sort_by)


def chart_series(runs: list[SavedRun]) -> tuple[dict, dict]:
    """Equity curves ``{symbol: {"run: strategy": series}}`` and fills by (label, symbol)."""
    curves: dict[str, dict[str, pd.Series]] = {}
    fills: dict[tuple[str, str], pd.DataFrame] = {}
    for run in runs:
        for (strategy, symbol), part in run.equity.groupby(["strategy", "symbol"], sort=False):
            label = f"{run.name}: {strategy}"
            curves.setdefault(symbol, {})[label] = pd.Series(
                part["equity"].to_numpy(), pd.DatetimeIndex(part["timestamp"]))
            if run.fills is not None:
                key = "account" if "account" in run.fills.columns else "symbol"
                mine = run.fills[(run.fills["strategy"] == strategy)
                                 & (run.fills[key] == symbol)]
                fills[(label, symbol)] = mine
    return curves, fills


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.compare",
                                     description="Compare the results of earlier backtests.")
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (with report.json)")
    parser.add_argument("--output", type=Path, default=Path("runs/comparison"),
                        help="where the table and chart go (default: runs/comparison)")
    parser.add_argument("--sort-by", default="sharpe", choices=METRICS,
                        help="metric to sort by, best first (default: sharpe)")
    parser.add_argument("--log-scale", action="store_true", help="log-scaled equity axis")
    parser.add_argument("--wide", action="store_true",
                        help="print every column (default: the key columns that fit 120 "
                             "characters; comparison.md and .csv have them all)")
    args = parser.parse_args(argv)
    runs = [read_run(path) for path in args.runs]
    _unique_names(runs)
    table = comparison(runs, args.sort_by)
    if args.output.exists() and not args.output.is_dir():
        raise DataError(f"--output {args.output} is a file; pass a directory")
    args.output.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.output / "comparison.csv", index=False)
    (args.output / "comparison.md").write_text(render_table(table, markdown=True))
    curves, fills = chart_series(runs)
    labels = [label for per_symbol in curves.values() for label in per_symbol]
    equity_chart(curves, args.output / "equity.png", args.log_scale or None,
                 title="Runs compared", fills=fills, colors=strategy_colors(labels))
    keep, priority = ("run", "strategy", "symbol"), (args.sort_by, "differs",
                                                       *TRADING_PRIORITY)
    print(console_table(table, keep, priority, wide=args.wide))
    hidden = left_out(table, fit_table(table, keep, priority))
    if hidden and not args.wide:
        print(not_shown(hidden, "comparison.md and comparison.csv"))
    for note in missing_notes(runs):
        print(note)
    flagged = table["differs"].astype(bool).sum()
    if flagged:
        print(f"\n{flagged} row(s) differ from the first run ({runs[0].name}) in test period, "
              "timeframe or costs: see the 'differs' column; those numbers are not like for "
              "like.")
    print(f"\nWritten to {args.output}/ (comparison.md, comparison.csv, equity.png)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, None))
