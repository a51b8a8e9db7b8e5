"""Market data: one entry point that returns clean, aligned OHLCV frames.

Each symbol is read from its CSV file when ``data.csv`` names one, otherwise from the
exchange through ccxt with the on-disk cache in front (only missing candles are asked
for). Every frame is then validated, gap-checked (filled or refused per
``data.gap_policy``) and all symbols are aligned on their common timestamps. A perpetual
future (``data.market: perp``) also reads its funding rates (``data.funding_csv``) and
gains their per-bar sums as the column ``funding_rate`` (``engine.data.funding``).

Example:
    >>> market = load_market_data(load_config("configs/btc.yaml").data)
    >>> market.frames["BTC/USDT"].close.tail()
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import ccxt
import pandas as pd

from engine.config import DataConfig
from engine.data.cache import CachedCandles, CandleCache, rows_to_frame
from engine.data.clean import GapReport, align, apply_gap_policy, check_spacing, normalise, validate
from engine.data.csv_source import read_csv_candles
from engine.data.exchange import Downloader, make_exchange
from engine.data.funding import check_perp, per_bar, read_funding_csv, sync_funding
from engine.data.retry import CSV_HINT
from engine.execution.records import FUNDING
from engine.timeframes import timeframe_ms

DAY_MS = 86_400_000


def utc_now_ms() -> int:
    """The current time in epoch milliseconds (the default clock)."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class SymbolReport:
    """What was loaded for one symbol, before alignment."""

    symbol: str
    source: str  # "csv:<path>" or "<exchange> (cache <path>)"
    rows: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    gaps: GapReport
    fetched_rows: int = 0  # candles newly downloaded in this call

    def describe(self) -> str:
        span = "empty"
        if self.rows:
            span = f"{self.first:%Y-%m-%d %H:%M} .. {self.last:%Y-%m-%d %H:%M} UTC"
        filled = " (filled)" if self.gaps.gaps else ""
        return f"{self.symbol}: {self.rows} rows, {span}, {self.gaps.describe()}{filled} " \
               f"[{self.source}]"


@dataclass
class MarketData:
    """Aligned frames per symbol, with what was loaded and how many requests it took."""

    frames: dict[str, pd.DataFrame]
    reports: dict[str, SymbolReport]
    requests: int = 0  # HTTP calls made to the exchange (0 when everything was cached)
    dropped_by_alignment: int = 0
    timeframe: str = "1d"
    # perpetual futures (data.market: perp): each symbol's funding rates by funding time;
    # their per-bar sums are the frames' FUNDING column
    funding: dict[str, pd.Series] = field(default_factory=dict)

    @property
    def index(self) -> pd.DatetimeIndex:
        """The common timestamps (bar open times, UTC)."""
        return next(iter(self.frames.values())).index


@dataclass
class MarketDataLoader:
    """Loads market data for a ``DataConfig``; swappable parts are constructor arguments.

    Args:
        cfg: The data section of the config.
        exchange: A ccxt client to use instead of building one from ``cfg``.
        now_ms: The clock, epoch ms; decides which candle is still open.
        sleep: Waits between retries.
        progress: Show progress bars while downloading.
        hint: How to go on when the exchange cannot be reached, ending that error.
            Defaults to checking the network or reading the candles from files
            (``data.csv``); paper trading, which needs the exchange, gives its own.
    """

    cfg: DataConfig
    exchange: ccxt.Exchange | None = None
    now_ms: Callable[[], int] = utc_now_ms
    sleep: Callable[[float], None] = time.sleep
    progress: bool = True
    hint: str = CSV_HINT
    _downloader: Downloader | None = field(default=None, repr=False)

    @property
    def downloader(self) -> Downloader:
        if self._downloader is None:
            exchange = self.exchange or make_exchange(self.cfg)
            self._downloader = Downloader(exchange, retries=self.cfg.retries,
                                          backoff_s=self.cfg.retry_backoff_s,
                                          sleep=self.sleep, progress=self.progress,
                                          hint=self.hint)
        return self._downloader

    @property
    def requests(self) -> int:
        return self._downloader.requests if self._downloader else 0

    def load(self) -> MarketData:
        """Read every configured symbol, validate, apply the gap policy and align."""
        step = pd.Timedelta(milliseconds=timeframe_ms(self.cfg.timeframe))
        frames, reports = {}, {}
        for symbol in self.cfg.symbols:
            if self.cfg.market == "perp" and symbol not in self.cfg.csv:
                check_perp(self.downloader, symbol, self.cfg.timeframe)  # before any download
            frame, source, fetched = self._read(symbol)
            frame = normalise(frame)  # validated where it was read (_read), naming the source
            check_spacing(frame, symbol, step, self.cfg.timeframe)
            frame, gaps = apply_gap_policy(frame, symbol, step, self.cfg.gap_policy)
            frames[symbol] = frame
            reports[symbol] = SymbolReport(
                symbol, source, len(frame), frame.index[0] if len(frame) else None,
                frame.index[-1] if len(frame) else None, gaps, fetched)
        aligned, dropped = align(frames)
        funding = {}
        if self.cfg.market == "perp":
            for symbol, frame in aligned.items():
                funding[symbol] = (read_funding_csv(self.cfg.funding_csv[symbol], symbol)
                                   if symbol in self.cfg.funding_csv else
                                   self._funding(symbol, frame.index[-1] + step))
                frame[FUNDING] = per_bar(funding[symbol], frame.index, step)
        return MarketData(aligned, reports, self.requests, dropped, self.cfg.timeframe,
                          funding)

    def _range_ms(self) -> tuple[int, int, bool]:
        """[since, until) of wanted open times (data.start .. data.end inclusive, or now).

        The third value says whether the clock capped ``until``: candles at or after it
        are still open (or not yet begun) and are never read.
        """
        since = _date_ms(self.cfg.start)
        closed_until = self.now_ms() - timeframe_ms(self.cfg.timeframe) + 1
        if self.cfg.end is not None and _date_ms(self.cfg.end) + DAY_MS <= closed_until:
            return since, _date_ms(self.cfg.end) + DAY_MS, False
        return since, closed_until, True

    def _funding(self, symbol: str, end: pd.Timestamp) -> pd.Series:
        """A perpetual's funding rates over the wanted candles, through the cache: up to
        the end of the last candle read (``end``, exclusive: its funding times fall
        inside it)."""
        since, _, capped = self._range_ms()
        until = int(end.value // 1_000_000)
        cache = CandleCache(self.cfg.cache_dir, self.cfg.exchange, columns=["rate"])
        return sync_funding(self.downloader, cache, symbol, since, until, capped)

    def _read(self, symbol: str) -> tuple[pd.DataFrame, str, int]:
        since, until, capped = self._range_ms()
        if symbol in self.cfg.csv:
            path = self.cfg.csv[symbol]
            frame = read_csv_candles(path, symbol)
            validate(normalise(frame), symbol, f"fix or remove that row in {path}")
            ms = frame.index.as_unit("ms").asi8
            return frame[(ms >= since) & (ms < until)], f"csv:{path}", 0
        cache = CandleCache(self.cfg.cache_dir, self.cfg.exchange)
        candles, fetched = self._sync(cache, symbol, since, until, capped)
        ms = candles.frame.index.as_unit("ms").asi8
        frame = candles.frame[(ms >= since) & (ms < until)]
        source = f"{self.cfg.exchange}, cache {cache.path(symbol, self.cfg.timeframe)}"
        return frame, source, fetched

    def _sync(self, cache: CandleCache, symbol: str, since: int, until: int,
              capped: bool) -> tuple[CachedCandles, int]:
        """Bring the cache up to [since, until), downloading only what it lacks.

        Downloads are validated before they are written: a bad candle never reaches the
        cache, so a later run asks the exchange again instead of failing on it for ever.
        """
        tf = self.cfg.timeframe
        cached = cache.read(symbol, tf)
        if cached is not None:
            validate(cached.frame, symbol, f"the row is in the cache file "
                     f"{cache.path(symbol, tf)}; delete that file to download its candles "
                     "again")
        if cached is None:
            frame = self._download(symbol, since, until, complete=not capped)
            candles = CachedCandles(frame, since, _covered_until(frame, since, until, capped, tf))
            cache.write(symbol, tf, candles)
            return candles, len(frame)
        parts = [cached.frame]
        covered_from, covered_until = cached.covered_from, cached.covered_until
        if since < covered_from:
            parts.insert(0, self._download(symbol, since, covered_from))
            covered_from = since
        if covered_until < until:
            tail = self._download(symbol, covered_until, until, complete=not capped)
            parts.append(tail)
            covered_until = _covered_until(tail, covered_until, until, capped, tf)
        fetched = sum(len(p) for p in parts) - len(cached.frame)
        if len(parts) == 1:
            return cached, 0
        frame = normalise(pd.concat([p for p in parts if not p.empty]))
        candles = CachedCandles(frame, covered_from, covered_until)
        cache.write(symbol, tf, candles)
        return candles, fetched

    def _download(self, symbol: str, since: int, until: int,
                  complete: bool = True) -> pd.DataFrame:
        """Candles in [since, until) from the exchange, validated (not yet cached).

        ``complete``: the range is in the past and must come whole (see
        ``Downloader.fetch``); otherwise it ends at the clock and may stop short of it.
        """
        frame = normalise(rows_to_frame(self.downloader.fetch(
            symbol, self.cfg.timeframe, since, until, complete)))
        go_on = "; to go on now, read this market from a CSV file with data.csv" \
            if self.hint == CSV_HINT else ""  # paper trading reads no files
        validate(frame, symbol, f"{self.cfg.exchange} sent it and nothing was cached, so the "
                 f"next run asks again (exchanges correct such candles){go_on}")
        return frame


def load_market_data(cfg: DataConfig, **kwargs) -> MarketData:
    """Clean, aligned OHLCV frames for ``cfg.symbols`` (see ``MarketDataLoader``)."""
    return MarketDataLoader(cfg, **kwargs).load()


def _date_ms(day) -> int:
    return int(pd.Timestamp(day, tz="UTC").timestamp() * 1000)


def _covered_until(frame: pd.DataFrame, since: int, until: int, capped: bool,
                   timeframe: str) -> int:
    """How far a download over [since, until) is known complete.

    An explicit end date is complete once downloaded. When the clock capped ``until``,
    coverage ends right after the last closed candle received, so the next run asks from
    there and nothing that closes later is missed.
    """
    if not capped:
        return until
    if frame.empty:
        return since
    return int(frame.index[-1].value // 1_000_000) + timeframe_ms(timeframe)


__all__ = ["MarketData", "MarketDataLoader", "SymbolReport", "load_market_data"]
