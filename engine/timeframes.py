"""Candle lengths, without importing the exchange library.

The units are ccxt's (``parse_timeframe``): s, m, h, d, w, M (30 days) and y (365 days).
"""

from __future__ import annotations

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800, "M": 2_592_000,
                 "y": 31_536_000}


def timeframe_ms(timeframe: str) -> int:
    """Length of one candle in milliseconds (``1d`` -> 86_400_000).

    Raises:
        ValueError: ``timeframe`` is not an amount followed by one of the units above.
    """
    amount, unit = timeframe[:-1], timeframe[-1:]
    if not amount.isdigit() or unit not in _UNIT_SECONDS or int(amount) == 0:
        raise ValueError(f"{timeframe!r} is not a timeframe like 1m, 4h or 1d")
    return int(amount) * _UNIT_SECONDS[unit] * 1000


def periods_per_year(timeframe: str) -> float:
    """Bars per year for a timeframe; crypto markets trade every day of the year (365)."""
    return 365.0 * 86_400_000 / timeframe_ms(timeframe)
