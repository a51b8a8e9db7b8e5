"""The PPO baseline: it learns an obvious rule, and runs walk-forward inside a backtest."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("stable_baselines3")

from stable_baselines3 import PPO  # noqa: E402

from engine.config import validate_config  # noqa: E402
from engine.data import MarketData  # noqa: E402
from engine.pipeline import run_strategies  # noqa: E402
from engine.rl import make_env  # noqa: E402
from engine.rl.agent import small_net_threads  # noqa: E402
from engine.walkforward import run_walkforward  # noqa: E402
from tests.conftest import make_ohlcv, write_config  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


def telling_series(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Bars whose volume rises before an up bar and falls before a down bar."""
    rng = np.random.default_rng(seed)
    returns = rng.choice([-0.02, 0.02], n)
    close = 100 * np.exp(np.cumsum(returns))
    open_ = np.concatenate([[100.0], close[:-1]])  # no gap: the fill is at the last close
    ups = np.concatenate([returns[1:] > 0, [True]])
    volume = 1000 * np.cumprod(np.where(ups, 1.5, 1 / 1.5))
    index = pd.date_range("2020-01-01", periods=n, freq="1D", tz="UTC", name="timestamp")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.001,
                         "low": np.minimum(open_, close) * 0.999, "close": close,
                         "volume": volume}, index=index)


def episode_return(env, policy) -> float:
    obs, info = env.reset(seed=0)
    start, done = info["equity"], False
    while not done:
        obs, _, done, _, info = env.step(policy(obs, env))
    return math.log(info["equity"] / start)


def test_ppo_learns_what_the_volume_tells(tmp_path):
    frames = {"BTC/USDT": telling_series()}
    cfg = validate_config({"data": {"symbols": ["BTC/USDT"]},
                           "model": {"window_len": 2, "features": ["volume"]},
                           "walkforward": {"train_bars": 250},
                           "broker": {"commission": 0.001, "slippage": 0.0}})
    train = make_env(cfg, 1, 249, market=frames)
    with small_net_threads():
        agent = PPO("MlpPolicy", train, n_steps=256, batch_size=64, learning_rate=3e-3, seed=0,
                    policy_kwargs={"net_arch": [16, 16]}, device="cpu")
        agent.learn(3_000)
    test = make_env(cfg, market=frames)  # bars 249 .. 399, never trained on
    closes = frames["BTC/USDT"]["close"].to_numpy()

    def oracle(obs, env):
        return int(closes[env.bar + 1] > closes[env.bar])

    best = episode_return(test, oracle)
    learned = episode_return(test, lambda obs, env: agent.predict(obs, deterministic=True)[0])
    assert best > 1.0  # the rule is worth a lot even after fees
    assert learned > 0.8 * best, (learned, best)


BASE = {"data": {"symbols": ["BTC/USDT", "ETH/USDT"]},
        "model": {"window_len": 5, "layers": 1, "units": 2, "epochs": 1, "batch_size": 64},
        "walkforward": {"train_bars": 150, "retrain_every": 50, "finetune_epochs": 1},
        "backtest": {"symbols": ["BTC/USDT"]}}
PPO_TINY = {"total_timesteps": 512, "finetune_timesteps": 128, "n_steps": 128,
            "batch_size": 32, "units": 8, "min_train_bars": 30}


@pytest.fixture(scope="module")
def market():
    return MarketData({"BTC/USDT": make_ohlcv(300, seed=1, price=10_000.0),
                       "ETH/USDT": make_ohlcv(300, seed=2, price=200.0)}, {})


@pytest.fixture(scope="module")
def walkforward(market):
    cfg = validate_config(BASE)
    return run_walkforward(market.frames, cfg.model, cfg.walkforward, None, progress=False)


def test_rl_ppo_runs_beside_the_lstm_with_one_agent_per_fold(tmp_path, market, walkforward):
    cfg = validate_config({**BASE, "strategies": [
        {"name": "rl_ppo", **PPO_TINY, "use_forecast": True, "action_space": "short_flat_long"},
        "lstm_signal", "buy_and_hold"]})
    runs = run_strategies(cfg, market, walkforward, tmp_path / "models")
    assert [r.label.split("(")[0] for r in runs] == ["rl_ppo", "lstm_signal", "buy_and_hold"]
    rl, lstm = runs[0], runs[1]
    assert rl.equity.index.equals(lstm.equity.index)
    assert len(rl.fills) > 0
    # Folds 0-3 (fit at 150, 200, 250, 300 bars): fold 0 has no out-of-sample forecast
    # to learn from, so it trains nothing and the agent stays flat over its bars.
    saved = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert [name[-12:] for name in saved] == [f"fold_00{k}.zip" for k in (1, 2, 3)], saved
    assert not rl.fills["decided_at"].lt(market.index[199]).any()
    again = run_strategies(cfg, market, walkforward, None)[0]
    pd.testing.assert_series_equal(rl.equity, again.equity)  # seeded: the same agents


def test_rl_ppo_decisions_ignore_later_bars(market, walkforward):
    cfg = validate_config({**BASE, "strategies": [{"name": "rl_ppo", **PPO_TINY}]})
    full = run_strategies(cfg, market, walkforward)[0]
    end = market.index[240]
    cut = MarketData({s: f.loc[:end] for s, f in market.frames.items()}, {})
    short = run_strategies(cfg, cut, walkforward)[0]
    assert len(short.equity) < len(full.equity)
    pd.testing.assert_series_equal(short.equity, full.equity.loc[:end])
    assert full.fills["time"].max() > end  # the full run did trade on after the cut


def test_backtest_command_reports_rl_ppo_beside_lstm_signal(tmp_path, market):
    """The whole command in a fresh process: TensorFlow trains first, then PyTorch."""
    csv = {}
    for symbol, frame in market.frames.items():
        csv[symbol] = tmp_path / f"{symbol.replace('/', '-')}.csv"
        frame.rename_axis("timestamp").reset_index().assign(
            timestamp=lambda f: f["timestamp"].dt.strftime("%Y-%m-%d")).to_csv(
            csv[symbol], index=False)
    raw = {**BASE, "data": {**BASE["data"], "start": "2020-01-01", "end": "2020-10-26",
                            "csv": {s: str(p) for s, p in csv.items()}},
           "strategies": [{"name": "rl_ppo", **PPO_TINY}, "lstm_signal", "buy_and_hold"],
           "output_dir": str(tmp_path / "out")}
    config = write_config(tmp_path, raw)
    proc = subprocess.run([sys.executable, "-m", "engine.backtest", str(config),
                           "--no-progress"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    names = [s["name"] for s in report["strategies"]]
    assert sorted(names) == ["buy_and_hold", "lstm_signal", "rl_ppo"]
    assert len(list((tmp_path / "out" / "models").glob("rl_ppo_*_fold_*.zip"))) == 4
    assert "rl_ppo(" in proc.stdout


def _backtest_in_a_fresh_process(tmp_path: Path, market, name: str, env: dict) -> Path:
    """The backtest command over ``market`` in a new process with its own model store."""
    folder = tmp_path / name
    folder.mkdir()
    csv = {}
    for symbol, frame in market.frames.items():
        csv[symbol] = str(folder / f"{symbol.replace('/', '-')}.csv")
        frame.rename_axis("timestamp").reset_index().to_csv(csv[symbol], index=False)
    raw = {**BASE, "data": {**BASE["data"], "start": "2020-01-01", "csv": csv,
                            "cache_dir": str(folder / "cache")},
           "strategies": [{"name": "rl_ppo", **PPO_TINY, "use_forecast": True}],
           "output_dir": str(folder / "out")}
    config = write_config(folder, raw)
    proc = subprocess.run([sys.executable, "-m", "engine.backtest", str(config), "--no-progress"],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return folder / "out"


def test_rl_ppo_with_the_forecast_decides_the_same_in_any_process(tmp_path, market):
    # The second process sees what a Ray worker sees (one OpenMP thread), and another hash
    # seed; each trains its own LSTM (no shared store) and its own agents.
    one = _backtest_in_a_fresh_process(tmp_path, market, "one", {"PYTHONHASHSEED": "1"})
    two = _backtest_in_a_fresh_process(tmp_path, market, "two", {
        "PYTHONHASHSEED": "2", "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1"})
    for name in ("predictions.csv", "fills.csv", "equity.csv"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    fills = pd.read_csv(one / "fills.csv")
    assert (fills["strategy"].str.startswith("rl_ppo")).sum() > 0  # the agent did trade
