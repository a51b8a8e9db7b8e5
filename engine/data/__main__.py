"""``python -m engine.data CONFIG [--export-csv DIR]``: download or update the candle cache.

Prints, per symbol, where its candles come from, the range and row count held, and the
gaps found; then the number of requests made (0 when the cache was already complete).
With ``--export-csv DIR`` it also writes each symbol's clean, aligned candles as
``DIR/<BASE>-<QUOTE>_<timeframe>.csv`` in the layout ``data.csv`` reads, and prints the
``data.csv`` lines to put in a config, so a later run needs no network. A perpetual
future's funding rates (``data.market: perp``) are written beside them as
``DIR/<BASE>-<QUOTE>_funding.csv`` (``timestamp,rate``, the layout ``data.funding_csv``
reads).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from engine.cli import run_cli
from engine.config import load_config
from engine.data import load_market_data
from engine.data.funding import export_funding_csv
from engine.errors import ConfigError


def export_csv(frames: Mapping[str, pd.DataFrame], timeframe: str,
               folder: Path) -> dict[str, Path]:
    """Write each symbol's candles as ``timestamp,open,high,low,close,volume`` CSV.

    Timestamps are ISO 8601 UTC bar open times; a file is written to a temporary name
    and renamed, so an interrupted export never leaves a truncated file behind.

    Returns:
        ``{symbol: path}`` of the files written.

    Raises:
        ConfigError: ``folder`` exists and is not a directory.
    """
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--export-csv {folder} is a file; pass a directory")
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for symbol, frame in frames.items():
        path = folder / f"{_stem(symbol)}_{timeframe}.csv"
        tmp = path.with_name(f".{path.name}.tmp")
        frame[["open", "high", "low", "close", "volume"]].rename_axis("timestamp").to_csv(
            tmp, date_format="%Y-%m-%dT%H:%M:%SZ", float_format="%.10g")
        tmp.replace(path)
        written[symbol] = path
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.data",
        description="Download or update cached candles for the symbols of a config.")
    parser.add_argument("config", help="YAML config file, e.g. configs/btc.yaml")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--export-csv", metavar="DIR", type=Path,
                        help="also write the candles as CSV files (the layout data.csv reads)")
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
    if args.export_csv:
        written = export_csv(market.frames, cfg.data.timeframe, args.export_csv)
        print(f"exported to {args.export_csv}/; to read these files instead of the exchange, "
              "put in the config:")
        print("data:\n  csv:")
        for symbol, path in written.items():
            print(f"    {symbol}: {path}")
        if market.funding:
            print("  funding_csv:")
            for symbol, rates in market.funding.items():
                path = args.export_csv / f"{_stem(symbol)}_funding.csv"
                print(f"    {symbol}: {export_funding_csv(rates, path)}")
    return 0


def _stem(symbol: str) -> str:
    """A symbol as a file name: ``BTC/USDT:USDT`` -> ``BTC-USDT-USDT``."""
    return symbol.replace("/", "-").replace(":", "-")


if __name__ == "__main__":
    sys.exit(run_cli(main, None))
