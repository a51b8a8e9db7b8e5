"""``python -m engine.data CONFIG``: download or update the candle cache and describe it.

Prints, per symbol, where its candles come from, the range and row count held, and the
gaps found; then the number of requests made (0 when the cache was already complete).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from engine.cli import run_cli
from engine.config import load_config
from engine.data import load_market_data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.data",
        description="Download or update cached candles for the symbols of a config.")
    parser.add_argument("config", help="YAML config file, e.g. configs/btc.yaml")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    market = load_market_data(cfg.data, progress=not args.no_progress)
    for report in market.reports.values():
        print(report.describe())
        if report.fetched_rows:
            print(f"  downloaded {report.fetched_rows} new candles")
    n = len(market.index)
    print(f"aligned: {n} common bars, {market.index[0]:%Y-%m-%d} .. {market.index[-1]:%Y-%m-%d}"
          + (f" ({market.dropped_by_alignment} rows dropped to align)"
             if market.dropped_by_alignment else ""))
    print(f"exchange requests: {market.requests}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, None))
