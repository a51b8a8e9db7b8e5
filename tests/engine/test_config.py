"""Config loading: valid files load, every kind of bad value is one named line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.cli import run_cli
from engine.config import load_config
from engine.data.__main__ import main as data_main
from engine.errors import ConfigError
from tests.conftest import config_dict, write_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["btc.yaml", "eth.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(REPO / "configs" / name)
    assert cfg.data.exchange == "binance"
    assert cfg.data.symbols == ("BTC/USDT", "ETH/USDT")
    assert str(cfg.data.start) == "2017-08-17"
    assert cfg.source_hash and len(cfg.source_hash) == 64


def test_config_is_frozen_and_defaults_output_dir_from_file_name(tmp_path):
    raw = config_dict(tmp_path)
    del raw["output_dir"]
    cfg = load_config(write_config(tmp_path, raw, "myrun.yaml"))
    assert cfg.output_dir == Path("runs/myrun")
    with pytest.raises(ValidationError, match="frozen"):
        cfg.data.exchange = "kraken"  # type: ignore[misc]
    assert isinstance(cfg.data.symbols, tuple)


BAD = [
    ({"model": {"dropout": 1.5}}, "model.dropout = 1.5 is not in [0, 1)"),
    ({"model": {"dropuot": 0.2}}, "unknown key model.dropuot (did you mean 'model.dropout'?)"),
    ({"modle": {}}, "unknown key modle (did you mean 'model'?)"),
    ({"model": {"units": "many"}}, "model.units = 'many' should be a valid integer"),
    ({"model": {"units": 0}}, "model.units = 0 must be >= 1"),
    ({"model": {"activation": "tan"}}, "model.activation = 'tan' is not one of"),
    ({"data": {"start": "2017-13-01"}}, "data.start = '2017-13-01'"),
    ({"data": {"start": "2021-01-01", "end": "2020-01-01"}},
     "data.end = 2020-01-01 is before data.start (2021-01-01)"),
    ({"data": {"symbols": ["btcusdt"]}},
     "data.symbols[0] = 'btcusdt' is not a ccxt market symbol"),
    ({"data": {"symbols": []}}, "data.symbols = [] must not be empty"),
    ({"data": {"symbols": ["BTC/USDT", "BTC/USDT"]}}, "lists BTC/USDT twice"),
    ({"data": {"exchange": "binanse"}}, "data.exchange = 'binanse' is not a ccxt exchange id "
                                        "(did you mean 'binance'?)"),
    ({"data": {"timeframe": "1 day"}}, "data.timeframe = '1 day' is not a timeframe"),
    ({"data": {"api_url": "localhost:80"}},
     "data.api_url = 'localhost:80' is not an http(s) base URL"),
    ({"data": {"csv": {"SOL/USDT": "x.csv"}}}, "data.csv[SOL/USDT] = 'x.csv' names a symbol that"),
    ({"data": {"gap_policy": "interpolate"}}, "data.gap_policy = 'interpolate' is not one of"),
    ({"broker": {"commission": -0.01}}, "broker.commission = -0.01 is not in [0, 0.1)"),
    ({"broker": {"cash": 0}}, "broker.cash = 0 must be > 0"),
    ({"walkforward": {"train_bars": 500, "train_until": "2021-01-01"}},
     "walkforward.train_bars = 500 cannot be set together with walkforward.train_until"),
    ({"walkforward": {"train_bars": None}},
     "walkforward.train_bars = null must be a number of bars unless walkforward.train_until"),
    ({"data": {"exchange_options": {"apiKey": "abc"}}},
     "data.exchange_options.apiKey = '...' is a credential"),
    ({"backtest": {"symbols": ["SOL/USDT"]}},
     "backtest.symbols = 'SOL/USDT' is not in data.symbols"),
    # Booleans and strings are not numbers; cash is finite and sane.
    ({"model": {"epochs": True}}, "model.epochs = True should be a valid integer"),
    ({"model": {"units": "32"}}, "model.units = '32' should be a valid integer"),
    ({"model": {"learning_rate": False}}, "model.learning_rate = False should be a valid number"),
    ({"walkforward": {"warm_start": "yes"}},
     "walkforward.warm_start = 'yes' should be a valid boolean"),
    ({"broker": {"cash": float("inf")}}, "broker.cash = inf should be a finite number"),
    ({"broker": {"cash": float("nan")}}, "broker.cash = nan should be a finite number"),
    ({"broker": {"cash": 1e308}}, "broker.cash = 1e+308 must be <= 1000000000000.0"),
]

# Credentials under any spelling ccxt would take, at any depth of the options.
CREDENTIAL_KEYS = ["apiKey", "api_key", "API-KEY", "secret", "secret_key", "SecretKey",
                   "password", "passphrase", "uid", "UID", "privateKey", "private_key",
                   "walletAddress", "wallet_address", "token", "accessToken", "login", "twofa"]


@pytest.mark.parametrize(("override", "expected"), BAD)
def test_bad_values_are_named_on_one_line(tmp_path, override, expected):
    raw = config_dict(tmp_path)
    for section, values in override.items():
        if isinstance(values, dict) and isinstance(raw.get(section), dict):
            raw[section] = {**raw[section], **values}
        else:
            raw[section] = values
    path = write_config(tmp_path, raw)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("data:\n  symbols: [BTC/USDT\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: invalid YAML at line \d+"):
        load_config(path)


def test_top_level_must_be_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- data\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    raw = config_dict(tmp_path, model={"dropout": 1.5})
    path = write_config(tmp_path, raw)
    assert run_cli(data_main, [str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: ") and "model.dropout = 1.5 is not in [0, 1)" in err


def test_cli_subprocess_has_no_traceback(tmp_path):
    path = write_config(tmp_path, config_dict(tmp_path, data={"timeframe": "fortnight"}))
    proc = subprocess.run([sys.executable, "-m", "engine.data", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: {path}: data.timeframe = 'fortnight' is not a timeframe such as 1m, 15m, "
        "1h, 4h, 1d or 1w"]


@pytest.mark.parametrize("key", CREDENTIAL_KEYS)
def test_credentials_in_exchange_options_are_refused(tmp_path, key):
    for options, where in (({key: "s3cr3t-value"}, key),
                           ({"options": {key: "s3cr3t-value"}}, f"options.{key}"),
                           ({"headers": {"X-MBX-APIKEY": "s3cr3t-value"}}, None)):
        raw = config_dict(tmp_path, data={"exchange_options": options})
        with pytest.raises(ConfigError) as info:
            load_config(write_config(tmp_path, raw))
        message = str(info.value)
        assert "is a credential" in message and "ENGINE_API_KEY" in message
        assert "s3cr3t-value" not in message
        if where:
            assert f"data.exchange_options.{where} = '...'" in message


def test_plain_exchange_options_are_still_accepted(tmp_path):
    raw = config_dict(tmp_path, data={"exchange_options": {
        "timeout": 500, "options": {"adjustForTimeDifference": True, "defaultType": "spot"}}})
    assert load_config(write_config(tmp_path, raw)).data.exchange_options["timeout"] == 500


def test_duplicate_yaml_keys_are_refused_with_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("broker:\n  cash: 500\nmodel:\n  units: 4\nbroker:\n  commission: 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (f"{path}: invalid YAML at line 5, column 1: the key 'broker' "
                               "appears twice (lines 1 and 5); keep one and merge their contents")
    nested = tmp_path / "nested.yaml"
    nested.write_text("model:\n  units: 4\n  units: 8\n")
    with pytest.raises(ConfigError, match=r"'units' appears twice \(lines 2 and 3\)"):
        load_config(nested)


def test_url_credentials_are_blanked_in_the_written_config(tmp_path):
    raw = config_dict(tmp_path, data={"api_url": "http://me:pa55word-x1@127.0.0.1:9"})
    cfg = load_config(write_config(tmp_path, raw))
    assert cfg.data.api_url == "http://me:pa55word-x1@127.0.0.1:9"  # used as given
    assert cfg.to_dict()["data"]["api_url"] == "http://***@127.0.0.1:9"
