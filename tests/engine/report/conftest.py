"""One small backtest (tiny model, CSV data) shared by the report tests."""

from __future__ import annotations

import pytest

from engine.config import validate_config
from engine.pipeline import run
from tests.conftest import config_dict, make_ohlcv


def _small_config(tmp, **backtest) -> dict:
    paths = {}
    for symbol, seed, price in (("BTC/USDT", 3, 10_000.0), ("ETH/USDT", 4, 200.0)):
        path = tmp / f"{symbol.replace('/', '-')}.csv"
        make_ohlcv(300, seed=seed, price=price).rename_axis("timestamp").reset_index() \
            .to_csv(path, index=False)
        paths[symbol] = str(path)
    raw = config_dict(tmp, data={"csv": paths, "end": "2021-12-31"},
                      model={"window_len": 5, "layers": 1, "units": 4, "epochs": 1},
                      walkforward={"train_bars": 200, "retrain_every": 40, "finetune_epochs": 1},
                      strategies=["lstm_signal", {"name": "sma_cross", "fast": 3, "slow": 8},
                                  "buy_and_hold"],
                      broker={"commission": 0.001, "slippage": 0.0005}, backtest=backtest)
    raw["output_dir"] = str(tmp / "run")
    return raw


@pytest.fixture(scope="package")
def small_run(tmp_path_factory):
    """A finished backtest on two generated symbols: its ``RunResult``."""
    raw = _small_config(tmp_path_factory.mktemp("report"))
    return run(validate_config(raw), progress=False)


@pytest.fixture(scope="package")
def portfolio_run(tmp_path_factory):
    """The same, with both symbols in one account (portfolio mode)."""
    raw = _small_config(tmp_path_factory.mktemp("portfolio"), portfolio=True)
    return run(validate_config(raw), progress=False)
