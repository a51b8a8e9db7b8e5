"""Validation, gap handling and alignment of OHLCV frames.

Every frame leaving ``engine.data`` has a UTC ``DatetimeIndex`` named ``timestamp`` (the
bar's open time), sorted, without duplicates, with float columns open, high, low, close
and volume, no NaN, positive prices and high >= low.

Gap policy (``data.gap_policy``):
    fill: each missing bar is inserted as a flat candle at the previous close
        (open = high = low = close = previous close) with zero volume: the market did
        not trade, so the price did not move. Strategies then see no move and no volume.
    refuse: any missing bar stops the run with the gap named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from engine.data.cache import COLUMNS
from engine.errors import DataError


@dataclass(frozen=True)
class GapReport:
    """Missing bars found in one series."""

    gaps: int = 0  # runs of consecutive missing bars
    missing_bars: int = 0  # bars missing in all
    largest: int = 0  # bars missing in the longest run
    largest_after: pd.Timestamp | None = None  # last bar before the longest run
    missing: tuple[pd.Timestamp, ...] = field(default=(), repr=False)  # every missing bar

    def summary(self) -> dict:
        """The counts, for reports (without the list of missing bars)."""
        return {"gaps": self.gaps, "missing_bars": self.missing_bars, "largest": self.largest,
                "largest_after": self.largest_after}

    def describe(self) -> str:
        if not self.gaps:
            return "no gaps"
        return (f"{self.gaps} gap{'s' * (self.gaps > 1)}, {self.missing_bars} missing bars, "
                f"largest {self.largest} after {self.largest_after:%Y-%m-%d %H:%M}")


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort by time, drop duplicate timestamps (keeping the last), floats on a UTC index."""
    index = pd.DatetimeIndex(frame.index)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    frame = frame.set_axis(index.as_unit("ns").rename("timestamp"))
    frame = frame[~frame.index.duplicated(keep="last")].sort_index()
    return frame[COLUMNS].astype("float64")


def validate(frame: pd.DataFrame, symbol: str, fix: str = "fix or remove that row") -> None:
    """Refuse NaN, non-positive prices, negative volume and high < low, naming the row.

    Args:
        frame: The candles.
        symbol: For the message.
        fix: Where the row is and how to be rid of it, for the message (a CSV file, the
            cache file, the exchange's reply). Defaults to "fix or remove that row".

    Raises:
        DataError: ``BTC/USDT: bad candle at 2020-03-12: high 10.0 < low 12.0``.
    """
    checks = [
        (frame[COLUMNS].isna().any(axis=1), "has a missing (NaN) value"),
        ((frame[["open", "high", "low", "close"]] <= 0).any(axis=1), "has a price <= 0"),
        (frame["volume"] < 0, "has a negative volume"),
        (frame["high"] < frame["low"], "has high < low"),
    ]
    for bad, problem in checks:
        if bad.any():
            when = bad.idxmax()
            row = frame.loc[when]
            values = ", ".join(f"{c} {row[c]:g}" for c in COLUMNS)
            raise DataError(f"{symbol}: bad candle at {when:%Y-%m-%d %H:%M} UTC {problem} "
                            f"({values}; {int(bad.sum())} such rows); {fix}")


def check_spacing(frame: pd.DataFrame, symbol: str, step: pd.Timedelta, timeframe: str) -> None:
    """Refuse candles that are not ``timeframe`` apart or not on one regular grid.

    A 4h file read as 1d would otherwise pass as gap-free and be annualised as daily.
    Calendar timeframes (1M, 1y) have no fixed length and are not checked.

    Raises:
        DataError: Naming the spacing found, or the first candle off the grid.
    """
    if len(frame) < 2 or timeframe[-1] in "My":
        return
    stamps = frame.index.as_unit("ns").asi8
    typical = pd.Timedelta(int(np.median(np.diff(stamps))))
    if typical != step:
        raise DataError(f"{symbol}: the candles are {_duration(typical)} apart, but "
                        f"data.timeframe is {timeframe}; set data.timeframe to match the data")
    off = (stamps - stamps[0]) % step.value != 0
    if off.any():
        when = frame.index[int(off.argmax())]
        raise DataError(f"{symbol}: the candle at {when:%Y-%m-%d %H:%M} UTC is off the "
                        f"{timeframe} grid that starts at {frame.index[0]:%Y-%m-%d %H:%M}; "
                        "fix or remove that row")


def _duration(delta: pd.Timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def find_gaps(frame: pd.DataFrame, step: pd.Timedelta) -> GapReport:
    """Count runs of missing bars on the regular ``step`` grid."""
    if len(frame) < 2:
        return GapReport()
    deltas = frame.index.to_series().diff().iloc[1:]
    missing = (deltas / step).round().astype(int) - 1
    runs = missing[missing > 0]
    if runs.empty:
        return GapReport()
    largest_at = runs.idxmax()
    before = frame.index[frame.index.get_loc(largest_at) - 1]
    grid = pd.date_range(frame.index[0], frame.index[-1], freq=step)
    missing = tuple(grid.difference(frame.index))
    return GapReport(len(runs), int(runs.sum()), int(runs.max()), before, missing)


def fill_gaps(frame: pd.DataFrame, step: pd.Timedelta) -> pd.DataFrame:
    """Insert flat, zero-volume candles at the previous close for every missing bar."""
    if frame.empty:
        return frame
    grid = pd.date_range(frame.index[0], frame.index[-1], freq=step, name="timestamp")
    filled = frame.reindex(grid)
    holes = filled["close"].isna()
    if not holes.any():
        return frame
    previous_close = filled["close"].ffill()
    for column in ("open", "high", "low", "close"):
        filled.loc[holes, column] = previous_close[holes]
    filled.loc[holes, "volume"] = 0.0
    return filled


def apply_gap_policy(frame: pd.DataFrame, symbol: str, step: pd.Timedelta,
                     policy: str) -> tuple[pd.DataFrame, GapReport]:
    """Find gaps, then fill them or refuse the series, per ``data.gap_policy``."""
    report = find_gaps(frame, step)
    if report.gaps and policy == "refuse":
        raise DataError(f"{symbol}: {report.describe()} (data.gap_policy is 'refuse'; "
                        "set it to 'fill' to insert flat candles)")
    return (fill_gaps(frame, step) if report.gaps else frame), report


def align(frames: dict[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], int]:
    """Keep only the timestamps every symbol has. Returns the frames and rows dropped.

    Raises:
        DataError: The symbols share no timestamp at all.
    """
    common = None
    for frame in frames.values():
        common = frame.index if common is None else common.intersection(frame.index)
    if common is None or len(common) == 0:
        ranges = "; ".join(f"{s}: {_span(f)}" for s, f in frames.items())
        raise DataError(f"the symbols share no timestamps ({ranges}); "
                        "check data.symbols, data.start and data.end")
    dropped = sum(len(f) - len(common) for f in frames.values())
    return {symbol: frame.loc[common] for symbol, frame in frames.items()}, dropped


def _span(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "no rows"
    return f"{frame.index[0]:%Y-%m-%d} .. {frame.index[-1]:%Y-%m-%d}"
