"""Shared fixtures: generated OHLCV, a loopback exchange serving it, and config builders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.loopback import LoopbackExchange

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def make_ohlcv(n: int = 400, start: str = "2020-01-01", freq: str = "1D", price: float = 100.0,
               seed: int = 0, drift: float = 0.0005, vol: float = 0.03) -> pd.DataFrame:
    """A deterministic random-walk OHLCV frame on a UTC index (valid candles only)."""
    rng = np.random.default_rng(seed)
    returns = rng.normal(drift, vol, n)
    close = price * np.exp(np.cumsum(returns))
    open_ = np.concatenate([[price], close[:-1]]) * np.exp(rng.normal(0, vol / 4, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, vol / 2, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, vol / 2, n))
    volume = rng.uniform(100, 1000, n)
    index = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="timestamp")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": volume}, index=index)


@pytest.fixture
def candles() -> dict[str, pd.DataFrame]:
    """400 daily bars each of BTC/USDT and ETH/USDT from 2020-01-01."""
    return {"BTC/USDT": make_ohlcv(seed=1, price=10_000.0),
            "ETH/USDT": make_ohlcv(seed=2, price=200.0)}


@pytest.fixture
def loopback(candles):
    """A loopback Binance serving ``candles`` with a small per-call cap (forces paging)."""
    with LoopbackExchange(candles, max_limit=100) as exchange:
        yield exchange


def config_dict(tmp_path: Path, exchange: LoopbackExchange | None = None, **sections) -> dict:
    """A config mapping whose data comes from ``exchange`` and output stays in tmp_path."""
    data = {"exchange": "binance", "symbols": ["BTC/USDT", "ETH/USDT"], "timeframe": "1d",
            "start": "2020-01-01", "cache_dir": str(tmp_path / "cache"),
            "retry_backoff_s": 0.0,
            "exchange_options": {"timeout": 1000, "enableRateLimit": False}}
    if exchange is not None:
        data["api_url"] = exchange.url
    data.update(sections.pop("data", {}))
    return {"data": data, "output_dir": str(tmp_path / "out"), **sections}


def write_config(tmp_path: Path, raw: dict, name: str = "test.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def make_config(tmp_path):
    """``make_config(exchange, **sections)`` -> path of a YAML config in tmp_path."""

    def build(exchange=None, name="test.yaml", **sections) -> Path:
        return write_config(tmp_path, config_dict(tmp_path, exchange, **sections), name)

    return build
