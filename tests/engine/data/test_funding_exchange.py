"""Perpetual candles and funding rates from the exchange (ccxt binanceusdm, loopback)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.config import validate_config
from engine.data import load_market_data
from engine.errors import DataError, ExchangeError
from engine.execution.records import FUNDING
from tests.conftest import config_dict, make_ohlcv
from tests.loopback import LoopbackExchange

PERP = "BTC/USDT:USDT"
FUNDING_PATH = "/fapi/v1/fundingRate"


@pytest.fixture
def market():
    """40 daily candles and a funding time every 8 hours, from their first open on."""
    frame = make_ohlcv(40, seed=1, price=10_000.0).round(8)
    times = pd.date_range(frame.index[0], periods=3 * 40, freq="8h", tz="UTC")
    rates = pd.Series(np.random.default_rng(1).normal(1e-4, 3e-4, len(times)).round(8),
                      index=times)
    return frame, rates


def perp_data(loop, tmp_path, **data) -> dict:
    return config_dict(tmp_path, loop, data={
        "exchange": "binanceusdm", "symbols": [PERP], "market": "perp", "end": "2020-02-09",
        **data})


def load(raw):
    return load_market_data(validate_config(raw).data, progress=False)


def test_funding_is_downloaded_in_pages_cached_and_summed_per_bar(tmp_path, market):
    frame, rates = market
    with LoopbackExchange({PERP: frame}, max_limit=25, funding={PERP: rates}) as ex:
        first = load(perp_data(ex, tmp_path))
        pages = ex.requests[FUNDING_PATH]
        assert pages >= 120 // 25  # paged: at most 25 rates a reply
        np.testing.assert_allclose(first.frames[PERP][FUNDING],
                                   rates.to_numpy().reshape(-1, 3).sum(axis=1), rtol=1e-12)
        assert (tmp_path / "cache" / "binanceusdm" / "BTC-USDT_USDT_funding.parquet").exists()
        ex.reset_counts()
        again = load(perp_data(ex, tmp_path))
        assert ex.requests[FUNDING_PATH] == 0 and ex.requests["/fapi/v1/klines"] == 0
        pd.testing.assert_series_equal(again.funding[PERP], first.funding[PERP])


def test_short_pages_and_429s_still_bring_the_whole_history(tmp_path, market):
    frame, rates = market
    with LoopbackExchange({PERP: frame}, max_limit=30, funding={PERP: rates}) as ex:
        ex.inject("short", times=3, path=FUNDING_PATH)
        ex.inject("429", times=2, path=FUNDING_PATH, after=1)
        loaded = load(perp_data(ex, tmp_path))
    assert list(loaded.funding[PERP]) == pytest.approx(list(rates))


def test_a_later_end_downloads_only_the_funding_it_lacks(tmp_path, market):
    frame, rates = market
    with LoopbackExchange({PERP: frame}, max_limit=1000, funding={PERP: rates}) as ex:
        load(perp_data(ex, tmp_path, end="2020-01-20"))
        ex.reset_counts()
        whole = load(perp_data(ex, tmp_path))
        starts = [int(q["startTime"]) for path, q in ex.log if path == FUNDING_PATH]
    assert starts and min(starts) >= int(pd.Timestamp("2020-01-21", tz="UTC").value // 10**6)
    assert list(whole.funding[PERP]) == pytest.approx(list(rates))


@pytest.mark.parametrize(("fault", "words"), [
    ("nan", "rate nan is not a funding rate"),
    ("disorder", "is not after the row before"),
])
def test_a_bad_page_is_a_one_line_error_and_nothing_is_cached(tmp_path, market, fault, words):
    frame, rates = market
    with LoopbackExchange({PERP: frame}, max_limit=50, funding={PERP: rates}) as ex:
        ex.inject(fault, path=FUNDING_PATH, after=1)
        with pytest.raises(DataError, match="binanceusdm BTC/USDT:USDT funding rates") as info:
            load(perp_data(ex, tmp_path))
    assert words in str(info.value) and "nothing was cached" in str(info.value)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "cache" / "binanceusdm" / "BTC-USDT_USDT_funding.parquet").exists()


def test_a_missing_page_is_an_error_not_a_shorter_history(tmp_path, market):
    frame, rates = market
    holed = rates.drop(rates.index[50:75])  # one page's worth the exchange lost
    with LoopbackExchange({PERP: frame}, max_limit=25, funding={PERP: holed}) as ex:
        with pytest.raises(DataError, match="a page is missing") as info:
            load(perp_data(ex, tmp_path))
    assert "no funding rate from 2020-01-17 08:00 UTC to 2020-01-26 00:00 UTC" in \
        str(info.value)
    stopped = rates.iloc[:90]
    with LoopbackExchange({PERP: frame}, funding={PERP: stopped}) as ex:
        with pytest.raises(DataError, match="the history stops at 2020-01-30 16:00 UTC"):
            load(perp_data(ex, tmp_path))


def test_perp_on_a_spot_market_is_a_one_line_error(tmp_path, market):
    frame, rates = market
    with LoopbackExchange({"BTC/USDT": frame}) as ex:
        raw = perp_data(ex, tmp_path, exchange="binance", symbols=["BTC/USDT"])
        with pytest.raises(ExchangeError, match="binance BTC/USDT is a spot market, not a "
                                                "perpetual future") as info:
            load(raw)
        assert ex.kline_requests == 0  # refused before any candle was downloaded
    assert "binanceusdm" in str(info.value) and "\n" not in str(info.value)


def test_the_shipped_perp_config_backtests_long_and_short_with_funding(tmp_path, market):
    """configs/perp_btc.yaml as shipped, its exchange the loopback and its sizes tiny."""
    import json
    from pathlib import Path

    import yaml

    from engine.pipeline import run as run_pipeline

    frame, rates = market
    raw = yaml.safe_load((Path(__file__).resolve().parents[3] / "configs" /
                          "perp_btc.yaml").read_text())
    with LoopbackExchange({PERP: frame}, funding={PERP: rates}) as ex:
        raw["data"].update(start="2020-01-01", end="2020-02-09", api_url=ex.url,
                           cache_dir=str(tmp_path / "cache"), retry_backoff_s=0.0)
        raw["model"].update(units=2, layers=1, epochs=1)
        raw["walkforward"].update(train_bars=25, retrain_every=20, finetune_epochs=1)
        raw["output_dir"] = str(tmp_path / "out")
        for spec in raw["strategies"]:
            if spec["name"] == "sma_cross":
                spec.update(fast=2, slow=5)
        run_pipeline(validate_config(raw), progress=False)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    paid = {e["strategy"]: e["funding_paid"] for e in report["strategies"]}
    assert len(paid) == 5 and paid["buy_and_hold"] != 0
    assert all(e["borrow_paid"] == 0 for e in report["strategies"])
