"""``python -m engine.compare DIR [DIR ...]``: one table and one chart over earlier runs.

Reads each run directory's report.json and equity.csv (written by ``engine.backtest``),
prints one comparison table of every (run, strategy, symbol), and saves it as Markdown
and CSV together with an overlaid equity chart. Runs whose test period, timeframe or
costs differ from the first run's are flagged in the table's ``differs`` column: their
numbers are not like for like.
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
from engine.config import METRICS
from engine.errors import DataError
from engine.plots import equity_chart
from engine.report import comparison_table, render_table, sort_table


@dataclass
class SavedRun:
    """One earlier run, read back from its directory."""

    name: str
    path: Path
    report: dict[str, Any]
    equity: pd.DataFrame

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
    return SavedRun(path.name, path, report, equity)


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.compare",
                                     description="Compare the results of earlier backtests.")
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (with report.json)")
    parser.add_argument("--output", type=Path, default=Path("runs/comparison"),
                        help="where the table and chart go (default: runs/comparison)")
    parser.add_argument("--sort-by", default="sharpe", choices=METRICS,
                        help="metric to sort by, best first (default: sharpe)")
    parser.add_argument("--log-scale", action="store_true", help="log-scaled equity axis")
    args = parser.parse_args(argv)
    runs = [read_run(path) for path in args.runs]
    _unique_names(runs)
    table = comparison(runs, args.sort_by)
    if args.output.exists() and not args.output.is_dir():
        raise DataError(f"--output {args.output} is a file; pass a directory")
    args.output.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.output / "comparison.csv", index=False)
    (args.output / "comparison.md").write_text(render_table(table, markdown=True))
    curves: dict[str, dict[str, pd.Series]] = {}
    for run in runs:
        for (strategy, symbol), part in run.equity.groupby(["strategy", "symbol"], sort=False):
            series = pd.Series(part["equity"].to_numpy(), pd.DatetimeIndex(part["timestamp"]))
            curves.setdefault(symbol, {})[f"{run.name}: {strategy}"] = series
    equity_chart(curves, args.output / "equity.png", args.log_scale, title="Runs compared")
    print(render_table(table))
    flagged = table["differs"].astype(bool).sum()
    if flagged:
        print(f"\n{flagged} row(s) differ from the first run ({runs[0].name}) in test period, "
              "timeframe or costs: see the 'differs' column; those numbers are not like for "
              "like.")
    print(f"\nWritten to {args.output}/ (comparison.md, comparison.csv, equity.png)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, None))
