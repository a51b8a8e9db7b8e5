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
