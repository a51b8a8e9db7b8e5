"""Downloading through ccxt's real binance class against the loopback exchange."""

from __future__ import annotations

import socket

import pandas as pd
import pytest

from engine.config import validate_config
from engine.data import MarketDataLoader, load_market_data
from engine.data.cache import CandleCache
from engine.errors import ExchangeError, TemporaryExchangeError
from tests.conftest import config_dict

DAY_MS = 86_400_000


def data_cfg(tmp_path, exchange, **data):
    return validate_config(config_dict(tmp_path, exchange, data=data)).data


def clock(exchange):
    return lambda: exchange.now_ms


def test_pages_through_all_candles(tmp_path, loopback, candles):
    market = load_market_data(data_cfg(tmp_path, loopback), now_ms=clock(loopback),
                              progress=False)
    # 400 bars at 100 per reply: 4 pages per symbol.
    assert loopback.kline_requests == 2 * 4
    for symbol, frame in candles.items():
        got = market.frames[symbol]
        assert len(got) == 400
        pd.testing.assert_index_equal(got.index, frame.index.as_unit("ns"), check_freq=False)
        assert got["close"].to_numpy() == pytest.approx(frame["close"].to_numpy(), rel=1e-9)


def test_second_run_makes_zero_requests(tmp_path, loopback):
    cfg = data_cfg(tmp_path, loopback)
    first = load_market_data(cfg, now_ms=clock(loopback), progress=False)
    loopback.reset_counts()
    second = load_market_data(cfg, now_ms=clock(loopback), progress=False)
    assert sum(loopback.requests.values()) == 0
    assert second.requests == 0
    for symbol in cfg.symbols:
        pd.testing.assert_frame_equal(first.frames[symbol], second.frames[symbol])


def test_later_end_fetches_only_the_tail(tmp_path, loopback):
    load_market_data(data_cfg(tmp_path, loopback, end="2020-06-30"), progress=False)
    loopback.reset_counts()
    market = load_market_data(data_cfg(tmp_path, loopback, end="2020-09-30"), progress=False)
    starts = [int(q["startTime"]) for path, q in loopback.log if path == "/api/v3/klines"]
    first_new = int(pd.Timestamp("2020-07-01", tz="UTC").timestamp() * 1000)
    assert starts and min(starts) == first_new
    assert market.index[-1] == pd.Timestamp("2020-09-30", tz="UTC")
    assert len(market.index) == 274  # 2020-01-01 .. 2020-09-30


def test_earlier_start_fetches_only_the_head(tmp_path, loopback):
    load_market_data(data_cfg(tmp_path, loopback, start="2020-03-01", end="2020-06-30"),
                     progress=False)
    loopback.reset_counts()
    market = load_market_data(data_cfg(tmp_path, loopback, start="2020-01-01", end="2020-06-30"),
                              progress=False)
    ends_before = int(pd.Timestamp("2020-03-01", tz="UTC").timestamp() * 1000)
    starts = [int(q["startTime"]) for path, q in loopback.log if path == "/api/v3/klines"]
    assert starts and all(s < ends_before for s in starts)
    assert market.index[0] == pd.Timestamp("2020-01-01", tz="UTC")


def test_still_open_candle_is_dropped(tmp_path, candles):
    from tests.loopback import LoopbackExchange

    last_open = int(candles["BTC/USDT"].index[-1].value // 1_000_000)
    with LoopbackExchange(candles, max_limit=1000, now_ms=last_open + 3_600_000) as ex:
        market = load_market_data(data_cfg(tmp_path, ex), now_ms=clock(ex), progress=False)
        assert market.index[-1] == candles["BTC/USDT"].index[-2]
        # Once the candle has closed, the next run fetches it (and only from there on).
        ex.now_ms = last_open + DAY_MS + 1
        ex.reset_counts()
        market = load_market_data(data_cfg(tmp_path, ex), now_ms=clock(ex), progress=False)
        assert market.index[-1] == candles["BTC/USDT"].index[-1]
        starts = [int(q["startTime"]) for p, q in ex.log if p == "/api/v3/klines"]
        assert starts == [last_open, last_open]  # one request per symbol, from the new candle


@pytest.mark.parametrize("fault", ["429", "500", "503", "malformed", "slow", "short"])
def test_temporary_faults_are_retried(tmp_path, loopback, candles, fault):
    loopback.inject(fault, times=2, delay_s=1.5)
    waits = []
    cfg = data_cfg(tmp_path, loopback, retries=3, retry_backoff_s=0.25)
    market = load_market_data(cfg, now_ms=clock(loopback), sleep=waits.append, progress=False)
    assert len(market.frames["BTC/USDT"]) == len(candles["BTC/USDT"])
    if fault == "short":
        assert waits == []  # a short page is not an error: paging simply goes on
    else:
        assert waits == [0.25, 0.5]


def test_bounded_retries_then_clear_failure_cache_intact(tmp_path, loopback):
    cfg = data_cfg(tmp_path, loopback, end="2020-06-30", retries=2, retry_backoff_s=0.1)
    load_market_data(cfg, progress=False)
    cache_file = CandleCache(cfg.cache_dir, "binance").path("BTC/USDT", "1d")
    before = cache_file.read_bytes()
    loopback.inject("503", times=100)
    waits = []
    longer = data_cfg(tmp_path, loopback, end="2020-12-31", retries=2, retry_backoff_s=0.1)
    with pytest.raises(TemporaryExchangeError) as info:
        load_market_data(longer, sleep=waits.append, progress=False)
    message = str(info.value)
    assert "binance BTC/USDT 1d candles: still failing after 3 attempts" in message
    assert "data.csv" in message
    assert waits == [0.1, 0.2]
    assert cache_file.read_bytes() == before
    assert not list(cache_file.parent.glob("*.tmp"))


def test_bad_symbol_fails_fast(tmp_path, loopback):
    cfg = data_cfg(tmp_path, loopback, symbols=["BTC/USDX"])
    waits = []
    with pytest.raises(ExchangeError, match=r"binance has no market BTC/USDX \(did you mean "):
        load_market_data(cfg, sleep=waits.append, progress=False)
    assert waits == [] and loopback.kline_requests == 0


def test_bad_timeframe_fails_fast(tmp_path, loopback):
    cfg = data_cfg(tmp_path, loopback, timeframe="7m")
    with pytest.raises(ExchangeError, match="binance has no 7m candles .* must be one of 1s, 1m"):
        load_market_data(cfg, progress=False)
    assert loopback.kline_requests == 0


def test_no_network_gives_one_line_with_csv_hint(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    raw = config_dict(tmp_path, data={"api_url": f"http://127.0.0.1:{port}", "retries": 1,
                                      "retry_backoff_s": 0})
    cfg = validate_config(raw).data
    with pytest.raises(TemporaryExchangeError) as info:
        load_market_data(cfg, progress=False)
    message = str(info.value)
    assert "binance: loading markets: still failing after 2 attempts" in message
    assert "connection refused" in message and "data.csv" in message
    assert "\n" not in message


def test_injected_exchange_client_is_used(tmp_path, loopback):
    """Swappable parts are constructor arguments: hand in an already-built client."""
    import ccxt

    client = ccxt.binance({"enableRateLimit": False,
                           "options": {"fetchMarkets": {"types": ["spot"]}}})
    client.urls["api"] = {k: v.replace("https://api.binance.com", loopback.url)
                          for k, v in client.urls["api"].items()}
    cfg = data_cfg(tmp_path, None, end="2020-02-29")
    market = MarketDataLoader(cfg, exchange=client, progress=False).load()
    assert len(market.index) == 60
    assert loopback.kline_requests == 2


# --- data that is never silently short, never cached bad ----------------------------------

def test_empty_page_mid_range_is_retried(tmp_path, loopback, candles):
    loopback.inject("empty", times=2, after=1)  # the second page comes back empty twice
    waits = []
    cfg = data_cfg(tmp_path, loopback, retries=3, retry_backoff_s=0.25)
    market = load_market_data(cfg, now_ms=clock(loopback), sleep=waits.append, progress=False)
    assert waits == [0.25, 0.5]
    assert len(market.frames["BTC/USDT"]) == len(candles["BTC/USDT"])
    assert market.dropped_by_alignment == 0


def test_persistent_empty_page_fails_and_the_cache_claims_nothing(tmp_path, loopback, candles):
    cfg = data_cfg(tmp_path, loopback, end="2020-06-30", retries=2)
    load_market_data(cfg, progress=False)
    cache_file = CandleCache(cfg.cache_dir, "binance").path("BTC/USDT", "1d")
    before = cache_file.read_bytes()
    loopback.inject("empty", times=100, after=1)  # the tail's second page never comes
    longer = data_cfg(tmp_path, loopback, end="2021-01-31", retries=2)
    with pytest.raises(TemporaryExchangeError) as info:
        load_market_data(longer, sleep=lambda s: None, progress=False)
    message = str(info.value)
    assert message.startswith("binance BTC/USDT 1d candles: the exchange sent no candles from "
                              "2020-10-09 00:00 UTC to 2021-02-01 00:00 UTC in 3 attempts")
    assert "data.end" in message and "\n" not in message
    assert cache_file.read_bytes() == before  # no span it does not hold
    loopback.faults.clear()  # the exchange is healthy again: the next run completes
    market = load_market_data(longer, progress=False)
    assert len(market.index) == 397 and market.index[-1] == pd.Timestamp("2021-01-31", tz="UTC")


def test_bad_candle_is_not_cached_and_a_corrected_one_is_used(tmp_path, candles):
    from engine.errors import DataError
    from tests.loopback import LoopbackExchange

    when = candles["BTC/USDT"].index[150]
    bad = {s: f.copy() for s, f in candles.items()}
    bad["BTC/USDT"].loc[when, "low"] = bad["BTC/USDT"].loc[when, "high"] * 1.1
    with LoopbackExchange(bad, max_limit=100) as ex:
        cfg = data_cfg(tmp_path, ex)
        with pytest.raises(DataError) as info:
            load_market_data(cfg, now_ms=clock(ex), progress=False)
        assert "BTC/USDT: bad candle at 2020-05-30 00:00 UTC has high < low" in str(info.value)
        assert "nothing was cached" in str(info.value)
        assert not CandleCache(cfg.cache_dir, "binance").path("BTC/USDT", "1d").exists()
        ex.candles = dict(candles)  # the exchange corrects the candle
        market = load_market_data(cfg, now_ms=clock(ex), progress=False)
    assert market.frames["BTC/USDT"].loc[when, "low"] == pytest.approx(
        candles["BTC/USDT"].loc[when, "low"])


def test_bad_row_in_the_cache_names_the_file(tmp_path, loopback):
    from engine.data.cache import CachedCandles
    from engine.errors import DataError

    cfg = data_cfg(tmp_path, loopback, end="2020-06-30")
    load_market_data(cfg, progress=False)
    cache = CandleCache(cfg.cache_dir, "binance")
    held = cache.read("BTC/USDT", "1d")
    frame = held.frame.copy()
    frame.iloc[10, frame.columns.get_loc("close")] = -1.0
    cache.write("BTC/USDT", "1d", CachedCandles(frame, held.covered_from, held.covered_until))
    with pytest.raises(DataError) as info:
        load_market_data(cfg, progress=False)
    message = str(info.value)
    assert "has a price <= 0" in message
    assert f"the row is in the cache file {cache.path('BTC/USDT', '1d')}; delete that file" \
        in message


def test_garbled_market_list_is_a_retried_exchange_fault(tmp_path, loopback, candles):
    loopback.inject("garbled", times=1, path="/api/v3/exchangeInfo")
    waits = []
    cfg = data_cfg(tmp_path, loopback, retries=2, retry_backoff_s=0.5)
    market = load_market_data(cfg, now_ms=clock(loopback), sleep=waits.append, progress=False)
    assert waits == [0.5] and len(market.index) == len(candles["BTC/USDT"])


def test_persistently_garbled_market_list_says_so(tmp_path, loopback):
    loopback.inject("garbled", times=100, path="/api/v3/exchangeInfo")
    cfg = data_cfg(tmp_path, loopback, retries=1)
    with pytest.raises(TemporaryExchangeError) as info:
        load_market_data(cfg, sleep=lambda s: None, progress=False)
    message = str(info.value)
    assert "binance: loading markets: still failing after 2 attempts" in message
    assert "malformed JSON reply" in message and "has no market" not in message


def test_credentials_echoed_by_the_exchange_are_redacted(tmp_path, loopback):
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import write_config

    key, password = "kEy-echo-5b1d27", "pr0xy-pw-93c1"
    url = loopback.url.replace("http://", f"http://trader:{password}@")
    config = write_config(tmp_path, config_dict(tmp_path, loopback, data={
        "api_url": url, "end": "2020-03-31", "retries": 2}))
    loopback.inject("echo_key", times=2)
    proc = subprocess.run([sys.executable, "-m", "engine.data", str(config), "--no-progress"],
                          cwd=Path(__file__).resolve().parents[3], capture_output=True,
                          text=True, timeout=120, env={**__import__("os").environ,
                                                       "ENGINE_API_KEY": key})
    assert proc.returncode == 0, proc.stderr
    assert "retry 1 of 2" in proc.stderr and "Internal error serving key trader:***;" in proc.stderr
    for text in (proc.stdout, proc.stderr):
        assert password not in text and key not in text


def test_empty_page_mid_range_without_an_end_date_fails_and_the_cache_claims_nothing(
        tmp_path, loopback, candles):
    """No data.end (the shipped configs' default): a gap before candles the exchange has
    is never taken as the end of the data."""
    cfg = data_cfg(tmp_path, loopback, retries=1)
    loopback.inject("empty", times=2, after=3)  # BTC's 4th page of 4 is empty, twice
    with pytest.raises(TemporaryExchangeError) as info:
        load_market_data(cfg, now_ms=clock(loopback), sleep=lambda s: None, progress=False)
    assert "BTC/USDT 1d candles: the exchange sent no candles from 2020-10-27 00:00 UTC" \
        in str(info.value) and "\n" not in str(info.value)
    assert CandleCache(cfg.cache_dir, "binance").read("BTC/USDT", "1d") is None
    market = load_market_data(cfg, now_ms=clock(loopback), progress=False)  # healthy again
    assert len(market.index) == 400


def test_range_up_to_the_clock_goes_on_without_late_candles_and_asks_again(
        tmp_path, loopback, candles, caplog):
    """The exchange lags the clock (or the market halted): the newest candles are late."""
    cfg = data_cfg(tmp_path, loopback, retries=1)  # no data.end: the range ends at the clock
    late = lambda: loopback.now_ms + 3 * 86_400_000  # noqa: E731  (our clock 3 days ahead)
    market = load_market_data(cfg, now_ms=late, sleep=lambda s: None, progress=False)
    assert len(market.index) == 400
    assert "the exchange sent no candles from 2021-02-04 00:00 UTC" in caplog.text
    assert "asked for again at the next run" in caplog.text
    cached = CandleCache(cfg.cache_dir, "binance").read("BTC/USDT", "1d")
    assert cached.covered_until == int(candles["BTC/USDT"].index[-1].value // 1_000_000) \
        + 86_400_000
    loopback.reset_counts()
    load_market_data(cfg, now_ms=late, sleep=lambda s: None, progress=False)
    starts = [int(q["startTime"]) for p, q in loopback.log if p == "/api/v3/klines"]
    assert starts[0] == cached.covered_until  # only the late candles are asked for again
