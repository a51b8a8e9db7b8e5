"""``python -m engine.backtest CONFIG [--output DIR] [--retrain] [--wide]``: the research
loop in one run.

The command: it loads the config, runs ``engine.pipeline.run`` (data, walk-forward,
strategies, report files) and prints the summary (forecast error beside persistence, P&L
beside buy-and-hold).

The arguments and the config are checked before the engine's heavy modules are imported
(plotting, backtrader, SciPy, Keras, ccxt), so ``--help`` and a mistyped key answer at
once; ``pipeline`` and the report are imported only for a run that goes ahead.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine.cli import run_cli

if TYPE_CHECKING:
    from engine.pipeline import RunResult


def summary(result: RunResult, wide: bool = False) -> str:
    """The tables printed at the end of a run.

    Args:
        result: The finished run.
        wide: Every column; by default the key columns that fit 120 characters (the rest
            are in report.json and report.html).
    """
    # Deferred like the run itself: SciPy and pandas are not needed to check arguments.
    import pandas as pd

    from engine.models_store import ModelStore
    from engine.report import comparison_table, forecast_table
    from engine.report.console import (
        FORECAST_PRIORITY,
        LAB_PRIORITY,
        TRADING_PRIORITY,
        WIDTH,
        console_table,
        fit_table,
        left_out,
        not_shown,
    )
    from engine.report.forecasters import verdicts
    from engine.report.lab_page import forecasters_table

    report, cfg = result.report, result.config
    data = report["run"]["data"]
    sort_by = cfg.backtest.sort_by
    table = comparison_table(report["strategies"], sort_by)
    lines = [
        f"Test period {data['test_start'][:10]} .. {data['end'][:10]} ({data['test_bars']} bars,"
        f" {len(result.walkforward.plans)} folds), device {report['run']['device']}",
        f"Folds: {report['run']['folds_trained']} trained, {report['run']['folds_reused']} "
        f"reused from the model store {ModelStore.for_data(cfg.data).root}/",
        "",
    ]
    shown: list[tuple[pd.DataFrame, tuple[str, ...], tuple[str, ...]]] = []
    if report["forecast"]:
        first = next(iter(report["forecasters"]))
        which = f" of {first}" if len(report["forecasters"]) > 1 else ""
        forecasts = forecast_table(report["forecast"], report["diagnostics"])
        shown.append((forecasts, ("symbol",), FORECAST_PRIORITY))
        lines += [f"Forecast error{which} (next close) beside persistence (next close = "
                  "this close):", console_table(*shown[-1], wide), ""]
    else:
        lines += ["No forecaster was fit: no strategy reads a forecast.", ""]
    if len(report["forecasters"]) > 1:
        shown.append((forecasters_table(report), ("forecaster", "symbol"), LAB_PRIORITY))
        lines += ["Forecasters on one scale (the predicted next-bar return; see report.html):",
                  console_table(*shown[-1], wide), ""]
    shown.append((table, ("strategy", "symbol"), (sort_by, *TRADING_PRIORITY)))
    lines += [f"Trading results after fees and slippage (sorted by {sort_by}):",
              console_table(*shown[-1], wide), ""]
    hidden = [c for frame, keep, priority in shown
              for c in left_out(frame, fit_table(frame, keep, priority))]
    if hidden and not wide:
        lines += [not_shown(list(dict.fromkeys(hidden)), "report.json and report.html"), ""]
    spa = report.get("spa", {})
    sentences = [f"{account}: does any strategy beat {e['benchmark']}? SPA p-value "
                 f"{e['p_value']:.2f} (the best: {e['best']}; a small p-value says yes, "
                 "beyond data snooping)" for account, e in spa.items()] + verdicts(report)
    lines += [textwrap.fill(s, WIDTH, subsequent_indent="  ") for s in sentences]
    if spa or report.get("forecast_comparison"):
        lines.append("")
    lines.append(f"Written to {result.output_dir}/")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.backtest",
        description="Walk-forward LSTM backtest: forecast error and trading P&L.")
    parser.add_argument("config", help="YAML config file, e.g. configs/btc.yaml")
    parser.add_argument("--output", metavar="DIR", help="output directory (overrides output_dir)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--retrain", action="store_true",
                        help="train every fold even when the model store has it (and replace "
                             "the stored one)")
    parser.add_argument("--wide", action="store_true",
                        help="print every column of the summary tables (default: the key "
                             "columns that fit 120 characters)")
    args = parser.parse_args(argv)
    from engine.config import load_config  # deferred: pydantic, not needed for --help

    overrides = {"output_dir": args.output} if args.output else None
    cfg = load_config(args.config, overrides)
    from strategies.registry import check_config  # deferred: backtrader, once the config is good

    check_config(cfg)
    from engine.pipeline import run  # deferred: ccxt, SciPy, matplotlib, plotly (Keras later)

    result = run(cfg, progress=not args.no_progress, retrain=args.retrain)
    print(summary(result, wide=args.wide))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, None))
