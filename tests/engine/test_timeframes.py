"""Candle lengths agree with ccxt's own parser without importing it at run time."""

from __future__ import annotations

import ccxt
import pytest

from engine.timeframes import periods_per_year, timeframe_ms


@pytest.mark.parametrize("timeframe", ["1s", "1m", "15m", "1h", "4h", "1d", "3d", "1w", "1M",
                                       "1y"])
def test_timeframe_ms_matches_ccxt(timeframe):
    assert timeframe_ms(timeframe) == int(ccxt.Exchange.parse_timeframe(timeframe) * 1000)


def test_periods_per_year_counts_every_day():
    assert periods_per_year("1d") == 365 and periods_per_year("1h") == 365 * 24


@pytest.mark.parametrize("bad", ["", "d", "0d", "1x", "h1"])
def test_bad_timeframes_are_refused(bad):
    with pytest.raises(ValueError, match="is not a timeframe"):
        timeframe_ms(bad)
