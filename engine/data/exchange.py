"""The ccxt side of market data: building the client and paging through ``fetch_ohlcv``."""

from __future__ import annotations

import difflib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import ccxt
import pandas as pd
from tqdm import tqdm

from engine.config import DataConfig
from engine.data.retry import CSV_HINT, call_with_retry
from engine.errors import ConfigError, ExchangeError, TemporaryExchangeError

log = logging.getLogger(__name__)


def make_exchange(cfg: DataConfig, sandbox: bool = False,
                  credentials: dict[str, str] | None = None) -> ccxt.Exchange:
    """Build the ccxt client for ``cfg.exchange``, rate limiter on.

    ``cfg.exchange_options`` are passed to the constructor. When ``cfg.api_url`` is set,
    every REST URL of the exchange keeps its path but goes to that base URL instead
    (testnets, proxies, the tests' loopback exchange). Exchanges whose market loading
    also asks derivatives APIs (binance's ``fetchMarkets.types``) are told to load spot
    markets only unless the options say otherwise; a class of derivatives only
    (``binanceusdm``, USD-margined perpetuals) loads its own.

    Args:
        cfg: The data section.
        sandbox: Switch the client to the exchange's sandbox (testnet) URLs.
        credentials: ``apiKey``/``secret``/``password`` for private calls. Defaults to None.

    Raises:
        ConfigError: Unknown exchange id, or no sandbox for it in ccxt.
    """
    cls = getattr(ccxt, cfg.exchange, None)
    if cls is None:
        raise ConfigError(f"data.exchange = {cfg.exchange!r} is not a ccxt exchange id")
    options = {"enableRateLimit": True, **cfg.exchange_options, **(credentials or {})}
    exchange = cls(options)
    if sandbox:
        try:
            exchange.set_sandbox_mode(True)
        except ccxt.NotSupported:
            raise ConfigError(f"{cfg.exchange} has no sandbox (testnet) in ccxt; run without "
                              "--sandbox to simulate fills only") from None
    fetch_markets = exchange.options.get("fetchMarkets")
    user_set = "fetchMarkets" in (cfg.exchange_options.get("options") or {})
    if not user_set:
        # a class that loads spot among other kinds (binance): spot only; a class of
        # derivatives alone (binanceusdm: linear contracts) keeps its own
        if isinstance(fetch_markets, dict) and "spot" in fetch_markets.get("types", ()):
            exchange.options["fetchMarkets"] = {**fetch_markets, "types": ["spot"]}
        elif isinstance(fetch_markets, list) and "spot" in fetch_markets:  # older ccxt
            exchange.options["fetchMarkets"] = ["spot"]
    if cfg.api_url:
        exchange.urls["api"] = redirect_urls(exchange.urls["api"], cfg.api_url)
    return exchange


def redirect_urls(urls: Any, base: str) -> Any:
    """Replace the scheme and host of every URL in ccxt's (nested) ``urls['api']``."""
    if isinstance(urls, dict):
        return {key: redirect_urls(value, base) for key, value in urls.items()}
    if isinstance(urls, str) and urls.startswith(("http://", "https://")):
        parts = urlsplit(urls)
        return base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
    return urls


@dataclass
class Downloader:
    """Pages through an exchange's candles with retries; counts the requests it makes.

    Args:
        exchange: A ccxt exchange client.
        retries: Retries of a temporary failure, per request.
        backoff_s: First retry wait in seconds; doubles after each failure.
        sleep: Waits between retries. Defaults to ``time.sleep``.
        progress: Show a progress bar when a download spans several pages.
        hint: How to go on when the exchange cannot be reached (ends that error).
    """

    exchange: ccxt.Exchange
    retries: int = 5
    backoff_s: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    progress: bool = True
    hint: str = CSV_HINT
    requests: int = 0
    _markets_loaded: bool = field(default=False, repr=False)

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        def counted():
            self.requests += 1
            return call()

        return call_with_retry(counted, what=what, retries=self.retries,
                               backoff_s=self.backoff_s, sleep=self.sleep, hint=self.hint)

    def check_market(self, symbol: str, timeframe: str) -> None:
        """Fail fast on a symbol or timeframe the exchange does not have.

        Raises:
            ExchangeError: Naming the exchange, the symbol or timeframe, and what exists.
        """
        ex = self.exchange
        if not self._markets_loaded:
            self._call(f"{ex.id}: loading markets", self._load_markets)
            self._markets_loaded = True
        if symbol not in ex.markets:
            hint = difflib.get_close_matches(symbol, list(ex.markets), n=3)
            raise ExchangeError(f"{ex.id} has no market {symbol}"
                                + (f" (did you mean {', '.join(hint)}?)" if hint else "")
                                + "; fix data.symbols")
        if ex.timeframes and timeframe not in ex.timeframes:
            raise ExchangeError(f"{ex.id} has no {timeframe} candles for {symbol}; "
                                f"data.timeframe must be one of {', '.join(ex.timeframes)}")
        if not ex.has.get("fetchOHLCV"):
            raise ExchangeError(f"{ex.id} does not serve candles (fetchOHLCV) through ccxt; "
                                "pick another data.exchange or use data.csv")

    def fetch(self, symbol: str, timeframe: str, since_ms: int, until_ms: int,
              complete: bool = True) -> list[list]:
        """Every candle with open time in [since_ms, until_ms), paging by ``since``.

        Pages may be shorter than asked (exchanges cap them differently); paging goes on
        from the last candle received until ``until_ms``. Asked for candles from a time
        before ``until_ms``, an exchange that has them returns the next ones; so an empty
        page there is a fault (a glitch, a lagging replica), retried like any other, and
        never taken as the end of the data: the caller gets the whole range or an error.

        Args:
            symbol: The market.
            timeframe: The candle length.
            since_ms: First open time wanted.
            until_ms: End of the range (exclusive).
            complete: The exchange must hold the whole range (a range of the past), so
                an empty page that persists is an error. False for a range that ends at
                the clock: the newest candles may be late (a halted market, a lagging
                exchange), so an empty page that persists ends the download there with a
                warning, but only if the exchange has no later closed candle either (a
                gap before candles it does have is an error, as above); the caller must
                not count that span as held. Defaults to True.

        Raises:
            TemporaryExchangeError: Still failing, or still no candles, after the retries;
                the message names the symbol and the span.
        """
        self.check_market(symbol, timeframe)
        ex = self.exchange
        tf_ms = ex.parse_timeframe(timeframe) * 1000
        limit = _page_limit(ex)
        what = f"{ex.id} {symbol} {timeframe} candles"
        rows: list[list] = []
        cursor = since_ms
        pages = max(1, -(-(until_ms - since_ms) // (tf_ms * (limit or 500))))
        with tqdm(total=pages, desc=f"{symbol} {timeframe}", unit="page", leave=False,
                  disable=not self.progress or pages < 3) as bar:
            while cursor < until_ms:
                try:
                    page = self._call(what, lambda c=cursor: self._fetch_page(
                        symbol, timeframe, c, limit))
                except TemporaryExchangeError as exc:
                    if not isinstance(exc.__cause__, EmptyPage):
                        raise
                    missing = _no_candles(what, cursor, until_ms, self.retries)
                    if complete or self._has_later(symbol, timeframe, cursor, until_ms, limit):
                        raise TemporaryExchangeError(
                            f"{missing}; nothing was cached for it; run again later, or set "
                            "data.end before that span if the market stopped trading") from None
                    log.warning("%s; going on without them, they are asked for again at "
                                "the next run", missing)
                    break
                rows.extend(row for row in page if row[0] < until_ms)
                cursor = max(cursor, page[-1][0] + tf_ms)
                bar.update(1)
        return rows

    def _has_later(self, symbol: str, timeframe: str, cursor: int, until_ms: int,
                   limit: int | None) -> bool:
        """Whether the exchange has closed candles after the empty page at ``cursor``.

        Asks once more, for the last page before ``until_ms``: candles there mean the empty
        page was a gap in the middle of the data, not the end of it.
        """
        tf_ms = self.exchange.parse_timeframe(timeframe) * 1000
        since = max(cursor + tf_ms, until_ms - tf_ms * (limit or 500))
        try:
            page = self._call(f"{self.exchange.id} {symbol} {timeframe} candles",
                              lambda: self._fetch_page(symbol, timeframe, since, limit))
        except TemporaryExchangeError as exc:
            if isinstance(exc.__cause__, EmptyPage):
                return False
            raise
        return any(row[0] < until_ms for row in page)

    def _fetch_page(self, symbol: str, timeframe: str, since: int, limit: int | None) -> list:
        """One page of candles from ``since`` on; never empty (see ``fetch``)."""
        page = self.exchange.fetch_ohlcv(symbol, timeframe, since=since, limit=limit)
        if not page:
            _check_reply_parsed(self.exchange)
        page = [row for row in page or [] if row and row[0] >= since]
        if not page:
            raise EmptyPage(f"{self.exchange.id} sent no candles from {_stamp(since)}")
        return page

    def _load_markets(self) -> dict:
        """``load_markets``, refusing a reply that yields no markets at all.

        ccxt parses a garbled market list into an empty one; taken at its word, every
        symbol would then be "not on the exchange". Raising makes it a retried fault.
        """
        ex = self.exchange
        markets = ex.load_markets(reload=True)
        if not markets:
            _check_reply_parsed(ex)
            raise ccxt.BadResponse(f"{ex.id}: the market list reply lists no markets "
                                   "(garbled or incomplete reply)")
        return markets


class EmptyPage(ccxt.BadResponse):
    """No candles where the exchange must have some: retried as a temporary fault."""


def _stamp(ms: int) -> str:
    return f"{pd.Timestamp(ms, unit='ms', tz='UTC'):%Y-%m-%d %H:%M} UTC"


def _no_candles(what: str, since: int, until: int, retries: int) -> str:
    return (f"{what}: the exchange sent no candles from {_stamp(since)} to {_stamp(until)} in "
            f"{retries + 1} attempts, though that span should have them")


def _check_reply_parsed(exchange: ccxt.Exchange) -> None:
    """Raise ``ccxt.BadResponse`` when the last reply was not JSON.

    ccxt turns an unparsable reply into an empty result; taken at its word, a garbled
    page would end the download early. Raising makes it a retried temporary failure.
    """
    body = exchange.last_http_response
    if isinstance(body, str) and body.strip():
        try:
            json.loads(body)
        except ValueError:
            raise ccxt.BadResponse(f"{exchange.id}: malformed JSON reply (not JSON, or cut "
                                   f"off) {body[:60]!r}") from None


def _page_limit(exchange: ccxt.Exchange) -> int | None:
    """The exchange's own per-call candle cap when ccxt knows it (binance spot: 1000)."""
    try:
        return int(exchange.features["spot"]["fetchOHLCV"]["limit"])
    except (KeyError, TypeError, ValueError):
        return None


__all__ = ["Downloader", "ExchangeError", "make_exchange", "redirect_urls"]
