"""``python -m engine.backtest CONFIG [--output DIR] [--retrain]``: the research loop in one run.

The command: it loads the config, runs ``engine.pipeline.run`` (data, walk-forward,
strategies, report files) and prints the summary (forecast error beside persistence, P&L
beside buy-and-hold).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from engine.cli import run_cli
from engine.config import load_config
from engine.models_store import ModelStore
from engine.pipeline import RunResult, run
from engine.report import comparison_table, forecast_table, render_table
from engine.report.forecasters import verdicts
from engine.report.lab_page import forecasters_table


def summary(result: RunResult) -> str:
    """The tables printed at the end of a run."""
    report, cfg = result.report, result.config
    data = report["run"]["data"]
    table = comparison_table(report["strategies"], cfg.backtest.sort_by)
    lines = [
        f"Test period {data['test_start'][:10]} .. {data['end'][:10]} ({data['test_bars']} bars,"
        f" {len(result.walkforward.plans)} folds), device {report['run']['device']}",
        f"Folds: {report['run']['folds_trained']} trained, {report['run']['folds_reused']} "
        f"reused from the model store {ModelStore.for_data(cfg.data).root}/",
        "",
    ]
    if report["forecast"]:
        first = next(iter(report["forecasters"]))
        which = f" of {first}" if len(report["forecasters"]) > 1 else ""
        lines += [f"Forecast error{which} (next close) beside persistence (next close = "
                  "this close):",
                  render_table(forecast_table(report["forecast"], report["diagnostics"])), ""]
    else:
        lines += ["No forecaster was fit: no strategy reads a forecast.", ""]
    if len(report["forecasters"]) > 1:
        lines += ["Forecasters on one scale (the predicted next-bar return; see report.html):",
                  render_table(forecasters_table(report)), ""]
    lines += [f"Trading results after fees and slippage (sorted by {cfg.backtest.sort_by}):",
              render_table(table), ""]
    spa = report.get("spa", {})
    lines += [f"{account}: does any strategy beat {e['benchmark']}? SPA p-value "
              f"{e['p_value']:.2f} (the best: {e['best']}; a small p-value says yes, beyond "
              "data snooping)" for account, e in spa.items()]
    lines += verdicts(report)
    lines += ["" if spa or report.get("forecast_comparison") else None,
              f"Written to {result.output_dir}/"]
    return "\n".join(line for line in lines if line is not None)


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
    args = parser.parse_args(argv)
    overrides = {"output_dir": args.output} if args.output else None
    cfg = load_config(args.config, overrides)
    result = run(cfg, progress=not args.no_progress, retrain=args.retrain)
    print(summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, None))

