"""Credentials given every way the engine accepts them reach no file and no output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import config_dict, make_ohlcv, write_config
from tests.engine.test_backtest import TINY
from tests.loopback import LoopbackExchange

REPO = Path(__file__).resolve().parents[2]
DAY = 86_400_000
SECRETS = {"ENGINE_API_KEY": "kEy-all-ways-7d3e91", "ENGINE_API_SECRET": "sEcReT-all-ways-0c4b2a",
           "ENGINE_API_PASSWORD": "pAsS-all-ways-55e0f8"}
PROXY_PASSWORD = "pr0xy-all-ways-a91c"


def run(tmp: Path, name: str, *args: str) -> int:
    """Run a command with the secrets in its environment; its output goes to log files."""
    with open(tmp / f"{name}.out.log", "w") as out, open(tmp / f"{name}.err.log", "w") as err:
        return subprocess.run([sys.executable, *args], cwd=REPO, stdout=out, stderr=err,
                              env={**os.environ, **SECRETS}, timeout=600).returncode


def test_no_secret_reaches_any_file_a_backtest_and_a_paper_run_write(tmp_path):
    candles = {"BTC/USDT": make_ohlcv(300, seed=1, price=10_000.0).round(8),
               "ETH/USDT": make_ohlcv(300, seed=2, price=200.0).round(8)}
    with LoopbackExchange(candles, max_limit=100) as ex:
        url = ex.url.replace("http://", f"http://trader:{PROXY_PASSWORD}@")
        raw = config_dict(tmp_path, ex, **{**TINY, "walkforward": {
            "train_bars": 250, "retrain_every": 20, "finetune_epochs": 1}})
        raw["data"].update(api_url=url, end="2020-10-26")
        backtest_cfg = write_config(tmp_path, raw, "backtest.yaml")
        raw["data"].pop("end")
        raw["strategies"], raw["paper"] = ["buy_and_hold"], {"fill": "ticker"}
        paper_cfg = write_config(tmp_path, raw, "paper.yaml")
        assert run(tmp_path, "backtest", "-m", "engine.backtest", str(backtest_cfg),
                   "--no-progress") == 0, (tmp_path / "backtest.err.log").read_text()
        ex.now_ms = int(candles["BTC/USDT"].index[-1].value // 1_000_000) + 1000
        # A gateway that quotes the API key back in an error, while an order is looked up.
        ex.inject("echo_key", times=1, path="/api/v3/order")
        state = tmp_path / "paper" / "state.sqlite"
        assert run(tmp_path, "paper", "-m", "engine.paper", "run", str(paper_cfg), "--state",
                   str(state), "--once", "--sandbox", "--no-progress") == 0, \
            (tmp_path / "paper.err.log").read_text()
        assert run(tmp_path, "status", "-m", "engine.paper", "status", "--state",
                   str(state)) == 0
        assert len(ex.orders) == 2  # the key was used: the sandbox orders went out
    assert "Internal error serving key ***" in (tmp_path / "paper.err.log").read_text()
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".yaml"
               or p.name == "config.yaml"]
    kinds = {p.suffix for p in written}
    assert {".json", ".html", ".sqlite", ".bak", ".parquet", ".keras", ".log"} <= kinds
    for path in written:
        data = path.read_bytes()
        for secret in (*SECRETS.values(), PROXY_PASSWORD):
            assert secret.encode() not in data, f"{secret} found in {path}"
