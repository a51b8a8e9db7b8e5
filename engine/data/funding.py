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
from typing import Any

import numpy as np
import pandas as pd

from engine.data.cache import CachedCandles, CandleCache
from engine.data.csv_source import parse_timestamps, read_text_table
from engine.errors import DataError, ExchangeError

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
    raw = read_text_table(path, label, "a header timestamp,rate and one row per funding time")
    if [c for c in COLUMNS if c not in raw.columns]:
        raise DataError(f"{label}: expected the columns timestamp,rate (milliseconds since "
                        f"the epoch, rate per funding interval as a fraction), found "
                        f"{','.join(raw.columns)}")
    index = parse_timestamps(raw["timestamp"], label) if len(raw) else \
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


# --- the exchange route: ccxt fetch_funding_rate_history, paged, checked, cached ----------

PAGE = 1000  # funding times asked per request (Binance USD-M: at most 1000)


def check_perp(downloader: Any, symbol: str, timeframe: str) -> None:
    """Fail fast unless ``symbol`` is a perpetual future of the downloader's exchange.

    Raises:
        ExchangeError: The market is missing, or is not a perpetual (swap) market, or
            the exchange serves no funding history through ccxt.
    """
    downloader.check_market(symbol, timeframe)
    ex = downloader.exchange
    market = ex.markets[symbol]
    if not market.get("swap"):
        raise ExchangeError(f"data.market = 'perp': {ex.id} {symbol} is a {market.get('type')} "
                            "market, not a perpetual future; use an exchange class of "
                            "perpetuals and its symbols (binanceusdm, BTC/USDT:USDT)")
    if not ex.has.get("fetchFundingRateHistory"):
        raise ExchangeError(f"data.market = 'perp': {ex.id} serves no funding rate history "
                            "through ccxt; give data.csv and data.funding_csv instead")


def download_funding(downloader: Any, symbol: str, since: int, until: int,
                     complete: bool) -> pd.Series:
    """Every funding rate of ``symbol`` with a funding time in [since, until), checked.

    Pages through ``fetch_funding_rate_history`` from ``since`` (each request retried
    like a candle page) until a page brings nothing new. Before anything is cached, the
    rates are checked (``checked``), and the history must have no hole (a step of more
    than twice the usual interval) and, for a range of the past (``complete``), must
    reach its end: a short history is an error, never taken as whole.

    Raises:
        DataError: A bad rate, times out of order, a hole, or a history that stops early.
        TemporaryExchangeError: Still failing after the retries.
    """
    ex = downloader.exchange
    what = f"{ex.id} {symbol} funding rates"
    times: list[int] = []
    rates: list[float] = []
    cursor = since
    while cursor < until:
        page = downloader._call(what, lambda c=cursor: ex.fetch_funding_rate_history(
            symbol, since=c, limit=PAGE))
        rows = [r for r in page or [] if r.get("timestamp") is not None
                and cursor <= r["timestamp"] < until]
        if not rows:
            break
        times += [int(r["timestamp"]) for r in rows]
        rates += [np.nan if r.get("fundingRate") is None else float(r["fundingRate"])
                  for r in rows]
        cursor = max(times) + 1
    index = pd.DatetimeIndex(pd.to_datetime(times, unit="ms", utc=True), name="timestamp")
    series = checked(pd.Series(rates, index=index.as_unit("ns"), name="rate", dtype="float64"),
                     f"{what} (nothing was cached; the next run asks again)")
    _check_whole(series, what, since, until, complete)
    return series


def _check_whole(rates: pd.Series, what: str, since: int, until: int, complete: bool) -> None:
    """A ``DataError`` when ``rates`` has a hole, or stops before ``until`` (``complete``)."""
    stamps = rates.index.as_unit("ms").asi8
    if len(stamps) == 0:
        if complete:
            raise DataError(f"{what}: the exchange sent no funding rates from {_stamp(since)} "
                            f"to {_stamp(until)}; nothing was cached; check data.start and "
                            "data.end against the market's listing")
        return
    steps = np.diff(stamps)
    usual = float(np.median(steps)) if len(steps) else 8 * 3_600_000.0
    holes = (steps > 2 * usual).nonzero()[0]
    if len(holes):
        i = int(holes[0])
        raise DataError(f"{what}: no funding rate from {_stamp(stamps[i])} to "
                        f"{_stamp(stamps[i + 1])} (every {usual / 3_600_000:g}h elsewhere): "
                        "a page is missing; nothing was cached; run again later")
    if complete and until - stamps[-1] > 1.5 * usual:
        raise DataError(f"{what}: the history stops at {_stamp(stamps[-1])}, before "
                        f"{_stamp(until)}; nothing was cached; run again later, or set "
                        "data.end before that time")


def sync_funding(downloader: Any, cache: CandleCache, symbol: str, since: int, until: int,
                 capped: bool) -> pd.Series:
    """The funding rates of [since, until) through the cache, downloading what it lacks.

    The cache file (``<cache_dir>/<exchange>/<symbol>_funding.parquet``) records the span
    it holds completely, as candle files do; a download is checked before it is written
    and the file is replaced atomically.
    """
    cached = cache.read(symbol, "funding")
    if cached is None:
        rates = download_funding(downloader, symbol, since, until, complete=not capped)
        covered = (since, _covered_until(rates, until, capped))
    else:
        rates, covered = cached.frame["rate"], (cached.covered_from, cached.covered_until)
        parts = [rates]
        if since < covered[0]:
            parts.insert(0, download_funding(downloader, symbol, since, covered[0], True))
        if covered[1] < until:
            tail = download_funding(downloader, symbol, covered[1], until, not capped)
            parts.append(tail)
            covered = (covered[0], _covered_until(tail, until, capped, covered[1]))
        covered = (min(since, covered[0]), covered[1])
        if len(parts) == 1:
            return _between(rates, since, until)
        rates = checked(pd.concat([p for p in parts if len(p)]).rename("rate"),
                        f"{symbol} funding rates in {cache.path(symbol, 'funding')}")
    cache.write(symbol, "funding", CachedCandles(rates.to_frame("rate"), *covered))
    return _between(rates, since, until)


def _covered_until(rates: pd.Series, until: int, capped: bool, start: int | None = None) -> int:
    """How far a download is known whole: ``until``, or right after the last funding time
    when the clock capped the range (the next run asks from there)."""
    if not capped:
        return until
    if not len(rates):
        return start if start is not None else until
    return int(rates.index.as_unit("ms").asi8[-1]) + 1


def _between(rates: pd.Series, since: int, until: int) -> pd.Series:
    ms = rates.index.as_unit("ms").asi8
    return rates[(ms >= since) & (ms < until)]


def _stamp(ms: int) -> str:
    return f"{pd.Timestamp(int(ms), unit='ms', tz='UTC'):%Y-%m-%d %H:%M} UTC"
