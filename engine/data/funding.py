"""Perpetual futures' funding rates: read, checked, and summed onto the bars.

A funding file (``data.funding_csv``) has the columns ``timestamp,rate``: the funding
time in milliseconds since the epoch (or ISO 8601, as candle files) and the rate paid per
funding interval as a fraction (0.0001 = 0.01%). Times must rise strictly, rates must be
finite and at most ``MAX_RATE`` in size: anything else is a one-line error naming the file
and the row.

The execution core pays funding per bar: ``per_bar`` sums the rates of the funding times
that fall in each bar (from its open, inclusive, to the next open) into the frame column
``FUNDING``; the account pays ``units x the bar's open x that sum`` (``rules.funding``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from engine.data.csv_source import _first_line, _parse_timestamps
from engine.errors import DataError

#: Largest funding rate per interval taken as real: exchanges cap theirs at a few percent.
MAX_RATE = 0.1
COLUMNS = ["timestamp", "rate"]


def read_funding_csv(path: str | Path, symbol: str) -> pd.Series:
    """One symbol's funding rates from a CSV file, indexed by funding time (UTC).

    Raises:
        DataError: Missing file, wrong columns, an unparseable time, a rate that is not a
            finite number of at most ``MAX_RATE`` in size, or times out of order, naming
            the file (``data.funding_csv[SYMBOL]``) and the row (1-based, after the header).
    """
    path = Path(path).expanduser()
    label = f"data.funding_csv[{symbol}] = {path}"
    try:
        raw = pd.read_csv(path, dtype=str, skipinitialspace=True)
    except FileNotFoundError:
        raise DataError(f"{label}: no such file; fix the path (relative paths are taken "
                        "from the current directory)") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{label}: cannot be read as CSV ({_first_line(exc)})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{label}: the file is empty; expected a header timestamp,rate and "
                        "one row per funding time") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    if [c for c in COLUMNS if c not in raw.columns]:
        raise DataError(f"{label}: expected the columns timestamp,rate (milliseconds since "
                        f"the epoch, rate per funding interval as a fraction), found "
                        f"{','.join(raw.columns)}")
    index = _parse_timestamps(raw["timestamp"], label) if len(raw) else \
        pd.DatetimeIndex([], tz="UTC", name="timestamp")
    rates = pd.to_numeric(raw["rate"], errors="coerce").to_numpy(dtype="float64")
    return checked(pd.Series(rates, index=index, name="rate"), label)


def checked(rates: pd.Series, label: str) -> pd.Series:
    """``rates`` when every rate is finite and at most ``MAX_RATE`` in size and the times
    rise strictly; else a ``DataError`` naming ``label`` and the first bad row."""
    values = rates.to_numpy(dtype="float64")
    bad = ~np.isfinite(values) | (np.abs(np.nan_to_num(values)) > MAX_RATE)
    if bad.any():
        row = int(bad.nonzero()[0][0])
        raise DataError(f"{label}: row {row + 1} ({rates.index[row]:%Y-%m-%d %H:%M} UTC): "
                        f"rate {float(values[row])!r} is not a funding rate (a finite fraction of "
                        f"at most {MAX_RATE:g} in size)")
    steps = np.diff(rates.index.asi8)
    if (steps <= 0).any():
        row = int((steps <= 0).nonzero()[0][0]) + 1
        raise DataError(f"{label}: row {row + 1}: funding time {rates.index[row]} is not after "
                        f"the row before ({rates.index[row - 1]}); funding times must rise")
    return rates


def per_bar(rates: pd.Series, index: pd.DatetimeIndex, step: pd.Timedelta) -> np.ndarray:
    """The funding rates of ``rates`` summed per bar of ``index`` (bar open times, one
    ``step`` long): a funding time counts in the bar whose open is at or before it and
    whose end is after it; times outside the bars are left out."""
    out = np.zeros(len(index))
    if not len(rates) or not len(index):
        return out
    times = rates.index.as_unit("ns").asi8
    opens = index.as_unit("ns").asi8
    bar = np.searchsorted(opens, times, side="right") - 1
    inside = (bar >= 0) & (times < opens[np.clip(bar, 0, None)] + step.value)
    np.add.at(out, bar[inside], rates.to_numpy(dtype="float64")[inside])
    return out


def export_funding_csv(rates: pd.Series, path: Path) -> Path:
    """Write ``rates`` as ``timestamp,rate`` (milliseconds since the epoch), through a
    temporary file renamed into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    frame = pd.DataFrame({"timestamp": rates.index.as_unit("ms").asi8,
                          "rate": rates.to_numpy(dtype="float64")})
    frame.to_csv(tmp, index=False)  # rates at full precision: they are small numbers
    tmp.replace(path)
    return path
