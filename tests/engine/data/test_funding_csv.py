"""Perpetual futures from files: data.market: perp with data.csv and data.funding_csv."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from engine.cli import run_cli
from engine.config import validate_config
from engine.data import load_market_data
from engine.data.__main__ import main as data_main
from engine.errors import ConfigError, DataError
from engine.execution.records import FUNDING
from tests.conftest import config_dict, make_ohlcv, write_config

EIGHT_HOURS = 8 * 3_600_000


@pytest.fixture
def files(tmp_path):
    """Daily candles of two symbols and their funding every 8 hours, as files."""
    paths = {}
    for i, symbol in enumerate(("BTC/USDT", "ETH/USDT")):
        frame = make_ohlcv(60, seed=i, price=[10_000.0, 200.0][i])
        stem = symbol.replace("/", "-")
        candles = tmp_path / f"{stem}_1d.csv"
        frame.rename_axis("timestamp").to_csv(candles)
        start = int(frame.index[0].value // 1_000_000)
        times = start + EIGHT_HOURS * np.arange(3 * len(frame))
        rates = np.random.default_rng(i).normal(0.0001, 0.0003, len(times))
        funding = tmp_path / f"{stem}_funding.csv"
        pd.DataFrame({"timestamp": times, "rate": rates}).to_csv(funding, index=False)
        paths[symbol] = (candles, funding, rates)
    return paths


def perp_config(tmp_path, files, **sections) -> dict:
    data = {"market": "perp", "end": "2020-02-29",
            "csv": {s: str(c) for s, (c, _, _) in files.items()},
            "funding_csv": {s: str(f) for s, (_, f, _) in files.items()}}
    return config_dict(tmp_path, None, data=data, **sections)


def test_each_bar_gets_the_funding_of_its_three_funding_times(tmp_path, files):
    market = load_market_data(validate_config(perp_config(tmp_path, files)).data,
                              progress=False)
    for symbol, (_, _, rates) in files.items():
        frame = market.frames[symbol]
        np.testing.assert_allclose(frame[FUNDING], rates.reshape(-1, 3).sum(axis=1)[:60],
                                   rtol=1e-12)
        assert list(market.funding[symbol]) == pytest.approx(list(rates))
    spot = dict(perp_config(tmp_path, files)["data"], market="spot", funding_csv={})
    plain = load_market_data(validate_config(config_dict(tmp_path, None, data=spot)).data,
                             progress=False)
    assert FUNDING not in plain.frames["BTC/USDT"].columns and plain.funding == {}


def test_a_backtest_reports_the_funding_each_strategy_paid(tmp_path, files):
    from engine.pipeline import run as run_pipeline

    raw = perp_config(tmp_path, files, walkforward={"train_bars": 30, "retrain_every": 10},
                      strategies=[{"name": "sma_cross", "fast": 2, "slow": 5, "short": True},
                                  "buy_and_hold"],
                      backtest={"symbols": ["BTC/USDT"]})
    run_pipeline(validate_config(raw), progress=False)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    entries = {e["name"]: e for e in report["strategies"]}
    hold = entries["buy_and_hold"]
    assert hold["funding_paid"] > 0  # a long, over funding rates that are mostly positive
    assert hold["contributions"]["BTC/USDT"]["funding"] == pytest.approx(hold["funding_paid"])
    assert entries["sma_cross"]["funding_paid"] != 0
    assert "funding_paid" in (tmp_path / "out" / "comparison.md").read_text()


@pytest.mark.parametrize(("content", "words"), [
    ("time,rate\n1577836800000,0.0001\n", "expected the columns timestamp,rate"),
    ("timestamp,rate\n1577836800000,nan\n", "row 1 (2020-01-01 00:00 UTC): rate nan is not "
                                            "a funding rate"),
    ("timestamp,rate\n1577836800000,0.5\n", "rate 0.5 is not a funding rate"),
    ("timestamp,rate\n1577836800000,0.0001\n1577836800000,0.0002\n",
     "row 2: funding time 2020-01-01 00:00:00+00:00 is not after the row before"),
    ("timestamp,rate\n1577836800000,abc\n", "rate nan is not a funding rate"),
])
def test_a_bad_funding_file_is_a_one_line_error_naming_it(tmp_path, files, content, words):
    bad = tmp_path / "bad_funding.csv"
    bad.write_text(content)
    raw = perp_config(tmp_path, files)
    raw["data"]["funding_csv"]["ETH/USDT"] = str(bad)
    with pytest.raises(DataError, match="data.funding_csv") as info:
        load_market_data(validate_config(raw).data, progress=False)
    assert words in str(info.value) and str(bad) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("change", "words"), [
    ({"funding_csv": {}}, "data.market = 'perp' reads BTC/USDT's candles and funding"),
    ({"csv": {}}, "give both data.csv[BTC/USDT] and data.funding_csv[BTC/USDT]"),
    ({"market": "spot"}, "is funding of a perpetual future: set data.market: perp"),
    ({"market": "future"}, "data.market"),
])
def test_perp_settings_that_cannot_work_are_one_line_errors(tmp_path, files, change, words):
    raw = perp_config(tmp_path, files)
    raw["data"].update(change)
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_export_writes_the_funding_files_beside_the_candles(tmp_path, files, capsys):
    config = write_config(tmp_path, perp_config(tmp_path, files))
    out = tmp_path / "export"
    assert run_cli(data_main, [str(config), "--no-progress", "--export-csv", str(out)]) == 0
    printed = capsys.readouterr().out
    snippet = yaml.safe_load(printed[printed.index("data:\n"):])
    assert snippet["data"]["funding_csv"] == {
        "BTC/USDT": str(out / "BTC-USDT_funding.csv"),
        "ETH/USDT": str(out / "ETH-USDT_funding.csv")}
    assert (out / "BTC-USDT_funding.csv").read_text().splitlines()[0] == "timestamp,rate"
    again = perp_config(tmp_path, files)
    again["data"].update(snippet["data"])
    before = load_market_data(validate_config(perp_config(tmp_path, files)).data,
                              progress=False)
    after = load_market_data(validate_config(again).data, progress=False)
    for symbol, frame in before.frames.items():
        np.testing.assert_allclose(after.frames[symbol][FUNDING], frame[FUNDING], rtol=1e-9)
