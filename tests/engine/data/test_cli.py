"""``python -m engine.data CONFIG`` against the loopback exchange."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import config_dict, write_config

REPO = Path(__file__).resolve().parents[3]


def run_data(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.data", str(config)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_downloads_then_second_run_makes_zero_requests(tmp_path, loopback):
    config = write_config(tmp_path, config_dict(tmp_path, loopback, data={"end": "2020-12-31"}))
    first = run_data(config)
    assert first.returncode == 0, first.stderr
    assert "BTC/USDT: 366 rows, 2020-01-01 00:00 .. 2020-12-31 00:00 UTC, no gaps" in first.stdout
    assert "downloaded 366 new candles" in first.stdout
    assert (tmp_path / "cache" / "binance" / "BTC-USDT_1d.parquet").is_file()
    assert loopback.kline_requests == 8

    loopback.reset_counts()
    second = run_data(config)
    assert second.returncode == 0, second.stderr
    assert "exchange requests: 0" in second.stdout
    assert sum(loopback.requests.values()) == 0


def test_missing_csv_exits_2_with_one_line(tmp_path):
    config = write_config(tmp_path, config_dict(tmp_path, data={
        "csv": {"BTC/USDT": str(tmp_path / "missing.csv")}, "symbols": ["BTC/USDT"]}))
    proc = run_data(config)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.csv: no such file" in lines[0]
