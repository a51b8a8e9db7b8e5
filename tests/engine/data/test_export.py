"""``python -m engine.data CONFIG --export-csv DIR``: cached candles as data.csv files."""

from __future__ import annotations

import pandas as pd
import yaml

from engine.cli import run_cli
from engine.config import validate_config
from engine.data import load_market_data
from engine.data.__main__ import main as data_main
from tests.conftest import config_dict, write_config


def test_export_round_trips_through_data_csv(tmp_path, loopback, capsys):
    raw = config_dict(tmp_path, loopback, data={"end": "2020-06-30"})
    config = write_config(tmp_path, raw)
    out = tmp_path / "csv"
    assert run_cli(data_main, [str(config), "--no-progress", "--export-csv", str(out)]) == 0
    printed = capsys.readouterr().out
    files = sorted(p.name for p in out.iterdir())
    assert files == ["BTC-USDT_1d.csv", "ETH-USDT_1d.csv"]
    assert (out / "BTC-USDT_1d.csv").read_text().splitlines()[0] == \
        "timestamp,open,high,low,close,volume"
    # the printed lines are a valid config fragment pointing at the files
    snippet = yaml.safe_load(printed[printed.index("data:\n"):])
    assert snippet["data"]["csv"] == {"BTC/USDT": str(out / "BTC-USDT_1d.csv"),
                                      "ETH/USDT": str(out / "ETH-USDT_1d.csv")}

    online = load_market_data(validate_config(raw).data, progress=False)
    loopback.reset_counts()
    offline_raw = config_dict(tmp_path, None, data={"end": "2020-06-30",
                                                    **snippet["data"]})
    offline = load_market_data(validate_config(offline_raw).data, progress=False)
    assert sum(loopback.requests.values()) == 0
    for symbol, frame in online.frames.items():
        pd.testing.assert_frame_equal(offline.frames[symbol], frame, check_freq=False,
                                      rtol=1e-9)


def test_export_onto_a_file_is_one_line_error(tmp_path, loopback, capsys):
    config = write_config(tmp_path, config_dict(tmp_path, loopback, data={"end": "2020-02-01"}))
    target = tmp_path / "taken"
    target.write_text("keep me")
    assert run_cli(data_main, [str(config), "--no-progress", "--export-csv", str(target)]) == 2
    assert capsys.readouterr().err.strip() == f"error: --export-csv {target} is a file; " \
                                              "pass a directory"
    assert target.read_text() == "keep me"
