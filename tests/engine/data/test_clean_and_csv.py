"""CSV import, validation, gap policy and multi-symbol alignment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.config import validate_config
from engine.data import load_market_data
from engine.data.clean import fill_gaps, find_gaps
from engine.errors import DataError
from tests.conftest import config_dict, make_ohlcv


def write_csv(path, frame, epoch_ms=False):
    out = frame.copy()
    stamps = out.index
    out.insert(0, "timestamp", stamps.as_unit("ms").asi8 if epoch_ms
               else stamps.strftime("%Y-%m-%d"))
    out.to_csv(path, index=False)
    return path


def csv_cfg(tmp_path, paths: dict, **data):
    raw = config_dict(tmp_path, data={"symbols": list(paths), "csv": {
        s: str(p) for s, p in paths.items()}, "end": "2021-12-31", **data})
    return validate_config(raw).data


@pytest.mark.parametrize("epoch_ms", [False, True])
def test_csv_import_iso_and_epoch(tmp_path, epoch_ms):
    frame = make_ohlcv(50)
    path = write_csv(tmp_path / "btc.csv", frame, epoch_ms)
    market = load_market_data(csv_cfg(tmp_path, {"BTC/USDT": path}), progress=False)
    got = market.frames["BTC/USDT"]
    assert market.requests == 0
    assert str(got.index.tz) == "UTC" and got.index.is_monotonic_increasing
    assert np.allclose(got["close"], frame["close"])
    assert market.reports["BTC/USDT"].source == f"csv:{path}"


def test_csv_is_cut_to_start_and_end(tmp_path):
    path = write_csv(tmp_path / "btc.csv", make_ohlcv(100))
    market = load_market_data(csv_cfg(tmp_path, {"BTC/USDT": path}, start="2020-01-10",
                                      end="2020-01-19"), progress=False)
    assert len(market.index) == 10


def test_csv_unsorted_and_duplicate_rows_are_normalised(tmp_path):
    frame = make_ohlcv(30)
    shuffled = pd.concat([frame.iloc[::-1], frame.iloc[5:7]])
    path = write_csv(tmp_path / "btc.csv", shuffled)
    got = load_market_data(csv_cfg(tmp_path, {"BTC/USDT": path}), progress=False).frames["BTC/USDT"]
    assert len(got) == 30 and got.index.is_monotonic_increasing and got.index.is_unique


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda t: t.replace("close", "last"), "missing column(s) close"),
    (lambda t: t.replace("2020-01-03", "2020-01-99", 1),
     "row 3: timestamp '2020-01-99' is neither an ISO date/time"),
    (lambda t: t.replace("\n2020-01-02,", "\n2020-01-02,abc", 1), "row 2: open = 'abc"),
    (lambda t: t.split("\n")[0] + "\n", "no rows below the header"),
    (lambda t: "", "the file is empty"),
])
def test_csv_errors_name_file_and_row(tmp_path, mutate, expected):
    path = tmp_path / "btc.csv"
    write_csv(path, make_ohlcv(10))
    path.write_text(mutate(path.read_text()))
    with pytest.raises(DataError) as info:
        load_market_data(csv_cfg(tmp_path, {"BTC/USDT": path}), progress=False)
    assert f"data.csv[BTC/USDT] = {path}" in str(info.value)
    assert expected in str(info.value)


def test_missing_csv_is_one_line(tmp_path):
    with pytest.raises(DataError, match=r"data.csv\[BTC/USDT\] = .*nope.csv: no such file"):
        load_market_data(csv_cfg(tmp_path, {"BTC/USDT": tmp_path / "nope.csv"}), progress=False)


@pytest.mark.parametrize(("column", "value", "problem"), [
    ("close", np.nan, "has a missing (NaN) value"),
    ("low", 0.0, "has a price <= 0"),
    ("open", -5.0, "has a price <= 0"),
    ("high", 1.0, "has high < low"),
    ("volume", -1.0, "has a negative volume"),
])
def test_bad_candles_are_refused_with_the_row(tmp_path, column, value, problem):
    frame = make_ohlcv(20)
    frame.iloc[7, frame.columns.get_loc(column)] = value
    path = write_csv(tmp_path / "btc.csv", frame)
    with pytest.raises(DataError) as info:
        load_market_data(csv_cfg(tmp_path, {"BTC/USDT": path}), progress=False)
    assert f"BTC/USDT: bad candle at 2020-01-08 00:00 UTC {problem}" in str(info.value)


def test_gaps_are_found_and_reported():
    frame = make_ohlcv(30).drop(pd.to_datetime(["2020-01-05", "2020-01-06", "2020-01-07",
                                                "2020-01-20"], utc=True))
    report = find_gaps(frame, pd.Timedelta("1D"))
    assert (report.gaps, report.missing_bars, report.largest) == (2, 4, 3)
    assert report.largest_after == pd.Timestamp("2020-01-04", tz="UTC")
    assert report.describe() == "2 gaps, 4 missing bars, largest 3 after 2020-01-04 00:00"


def test_fill_policy_inserts_flat_zero_volume_candles(tmp_path):
    frame = make_ohlcv(30)
    holes = pd.to_datetime(["2020-01-05", "2020-01-06"], utc=True)
    path = write_csv(tmp_path / "btc.csv", frame.drop(holes))
    market = load_market_data(csv_cfg(tmp_path, {"BTC/USDT": path}), progress=False)
    got = market.frames["BTC/USDT"]
    assert len(got) == 30
    prev_close = frame.loc["2020-01-04", "close"].item()
    for stamp in holes:
        row = got.loc[stamp]
        assert row[["open", "high", "low", "close"]].tolist() == [prev_close] * 4
        assert row["volume"] == 0
    assert market.reports["BTC/USDT"].gaps.missing_bars == 2


def test_refuse_policy_stops_with_the_gap(tmp_path):
    frame = make_ohlcv(30).drop(pd.to_datetime(["2020-01-05"], utc=True))
    path = write_csv(tmp_path / "btc.csv", frame)
    with pytest.raises(DataError, match=r"BTC/USDT: 1 gap, 1 missing bars, largest 1 after "
                                        r"2020-01-04 00:00 \(data.gap_policy is 'refuse'"):
        load_market_data(csv_cfg(tmp_path, {"BTC/USDT": path}, gap_policy="refuse"),
                         progress=False)


def test_fill_gaps_keeps_hourly_grid():
    frame = make_ohlcv(10, freq="1h")
    hole = pd.Timestamp("2020-01-01 03:00", tz="UTC")
    filled = fill_gaps(frame.drop([hole]), pd.Timedelta("1h"))
    assert filled.index.equals(frame.index)
    assert filled.loc[hole, "close"] == frame.loc[pd.Timestamp("2020-01-01 02:00", tz="UTC"),
                                                  "close"]


def test_symbols_are_aligned_on_common_timestamps(tmp_path):
    btc = make_ohlcv(60, seed=1)
    eth = make_ohlcv(50, seed=2, start="2020-01-11")  # starts later, same end
    paths = {"BTC/USDT": write_csv(tmp_path / "btc.csv", btc),
             "ETH/USDT": write_csv(tmp_path / "eth.csv", eth)}
    market = load_market_data(csv_cfg(tmp_path, paths), progress=False)
    assert len(market.index) == 50
    assert market.index[0] == pd.Timestamp("2020-01-11", tz="UTC")
    assert market.dropped_by_alignment == 10
    assert (market.frames["BTC/USDT"].index == market.frames["ETH/USDT"].index).all()
    assert market.reports["BTC/USDT"].rows == 60  # the report describes what was loaded


def test_disjoint_symbols_are_refused(tmp_path):
    paths = {"BTC/USDT": write_csv(tmp_path / "btc.csv", make_ohlcv(10)),
             "ETH/USDT": write_csv(tmp_path / "eth.csv", make_ohlcv(10, start="2021-01-01"))}
    with pytest.raises(DataError, match="the symbols share no timestamps"):
        load_market_data(csv_cfg(tmp_path, paths), progress=False)


def test_csv_and_exchange_mix(tmp_path, loopback, candles):
    path = write_csv(tmp_path / "eth.csv", candles["ETH/USDT"])
    raw = config_dict(tmp_path, loopback, data={"csv": {"ETH/USDT": str(path)},
                                                "end": "2020-12-31"})
    market = load_market_data(validate_config(raw).data, progress=False)
    assert loopback.requests["/api/v3/klines"] > 0
    assert all("ETHUSDT" not in q.get("symbol", "") for _, q in loopback.log)
    assert len(market.index) == 366


def test_candles_of_another_timeframe_are_refused(tmp_path):
    path = tmp_path / "btc.csv"
    frame = make_ohlcv(50, freq="4h")
    out = frame.copy()
    out.insert(0, "timestamp", frame.index.strftime("%Y-%m-%dT%H:%M:%SZ"))
    out.to_csv(path, index=False)
    with pytest.raises(DataError, match="BTC/USDT: the candles are 4h apart, but "
                                        "data.timeframe is 1d"):
        load_market_data(csv_cfg(tmp_path, {"BTC/USDT": path}), progress=False)


def test_a_candle_off_the_grid_is_refused(tmp_path):
    frame = make_ohlcv(20)
    frame.index = frame.index.where(frame.index != frame.index[5],
                                    frame.index[5] + pd.Timedelta("3h"))
    out = frame.copy()
    out.insert(0, "timestamp", frame.index.strftime("%Y-%m-%dT%H:%M:%SZ"))
    path = tmp_path / "btc.csv"
    out.to_csv(path, index=False)
    with pytest.raises(DataError, match="the candle at 2020-01-06 03:00 UTC is off the 1d grid"):
        load_market_data(csv_cfg(tmp_path, {"BTC/USDT": path}), progress=False)
