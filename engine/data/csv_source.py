"""Candles from CSV files: ``timestamp,open,high,low,close,volume``.

``timestamp`` is the bar's open time, either ISO 8601 (``2024-01-31``,
``2024-01-31T04:00:00Z``; read as UTC when no offset is given) or epoch milliseconds.
Extra columns are ignored; column names are matched case-insensitively.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from engine.data.cache import COLUMNS
from engine.errors import DataError

REQUIRED = ["timestamp", *COLUMNS]


def read_csv_candles(path: str | Path, symbol: str) -> pd.DataFrame:
    """Read one symbol's candles from a CSV file.

    Raises:
        DataError: Missing file, missing columns, an unparseable timestamp or a
            non-numeric value, naming the file and the row (1-based, after the header).
    """
    path = Path(path).expanduser()
    label = f"data.csv[{symbol}] = {path}"
    raw = read_text_table(path, label, f"a header {','.join(REQUIRED)} and one row per candle")
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise DataError(f"{label}: missing column(s) {', '.join(missing)}; expected "
                        f"{','.join(REQUIRED)} (found {','.join(raw.columns)})")
    if raw.empty:
        raise DataError(f"{label}: no rows below the header")
    index = parse_timestamps(raw["timestamp"], label)
    values = {}
    for column in COLUMNS:
        numbers = pd.to_numeric(raw[column], errors="coerce")
        bad = numbers.isna() & raw[column].notna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise DataError(f"{label}: row {row + 1}: {column} = {raw[column].iloc[row]!r} "
                            "is not a number")
        values[column] = numbers.to_numpy(dtype="float64")
    return pd.DataFrame(values, index=index)


def read_text_table(path: Path, label: str, expected: str) -> pd.DataFrame:
    """A CSV file as text cells, its column names stripped and lower-cased.

    Raises:
        DataError: A missing, unreadable or empty file, in one line starting with
            ``label``; ``expected`` says what an empty file should have held.
    """
    try:
        raw = pd.read_csv(path, dtype=str, skipinitialspace=True)
    except FileNotFoundError:
        raise DataError(f"{label}: no such file; fix the path (relative paths are taken "
                        "from the current directory)") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{label}: cannot be read as CSV ({_first_line(exc)})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{label}: the file is empty; expected {expected}") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    return raw


def parse_timestamps(column: pd.Series, label: str) -> pd.DatetimeIndex:
    """``column`` (ISO dates/times or epoch milliseconds) as a UTC index named timestamp.

    Raises:
        DataError: The first row that is neither, named with ``label``.
    """
    text = column.fillna("").str.strip()
    if text.str.fullmatch(r"\d{11,14}").all():
        parsed = pd.to_datetime(text.astype("int64"), unit="ms", utc=True)
    else:
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(f"{label}: row {row + 1}: timestamp {column.iloc[row]!r} is neither an "
                        "ISO date/time (2024-01-31, 2024-01-31T04:00:00Z) nor epoch milliseconds")
    return pd.DatetimeIndex(parsed, name="timestamp").as_unit("ns")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
