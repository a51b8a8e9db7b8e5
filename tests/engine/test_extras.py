"""The lean install: without the sweep and rl extras (and playwright) backtests, the
report, comparisons and paper trading run, and what needs an extra says so in one line.

Each case runs the commands in a fresh interpreter whose ``sitecustomize`` makes the
extras' packages unimportable, as in an environment made with ``pip install -e .``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import config_dict, make_ohlcv, write_config
from tests.engine.sweep.conftest import sweep_dict, write_candles, write_sweep
from tests.loopback import LoopbackExchange

REPO = Path(__file__).resolve().parents[2]
EXTRAS = ("ray", "optuna", "numba", "gymnasium", "stable_baselines3", "torch", "playwright")
_BLOCKER = """
import sys

BLOCKED = {blocked!r}


class _NotInstalled:
    \"\"\"Behaves as if the packages were never installed.\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
"""


@pytest.fixture
def lean(tmp_path):
    """``lean(module, *args)`` runs ``python -m module args`` without the extras;
    ``lean("-c", code)`` runs code."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_BLOCKER.format(blocked=EXTRAS))
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}"}

    def run(module: str, *args, timeout: int = 600) -> subprocess.CompletedProcess:
        command = [sys.executable, "-c", *args] if module == "-c" else \
            [sys.executable, "-m", module, *map(str, args)]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=timeout)

    return run


def test_the_extras_cannot_be_imported(lean):
    code = (f"import importlib\nfor name in {EXTRAS!r}:\n    try:\n"
            "        importlib.import_module(name)\n    except ImportError:\n        print(name)\n")
    done = lean("-c", code)
    assert done.stdout.split() == list(EXTRAS), done.stderr


def test_sweep_without_its_extra_is_one_line(tmp_path, lean):
    csv = write_candles(tmp_path / "data")
    sweep = write_sweep(tmp_path / "sweep.yaml", sweep_dict(csv, tmp_path / "out"))
    done = lean("engine.sweep", sweep)
    assert done.returncode == 2
    assert done.stderr == ('error: python -m engine.sweep needs the sweep extra (ray is not '
                           'installed): pip install -e ".[sweep]" in the repository (or pip '
                           'install "lstm-trading-engine[sweep]")\n')
    assert not (tmp_path / "out").exists()


def test_rl_strategy_without_its_extra_is_one_line_before_the_data(tmp_path, lean):
    raw = config_dict(tmp_path, data={"csv": {"BTC/USDT": str(tmp_path / "missing.csv")}},
                      strategies=["rl_ppo", "buy_and_hold"])
    done = lean("engine.backtest", write_config(tmp_path, raw))
    assert done.returncode == 2
    assert done.stderr.startswith("error: the strategy rl_ppo needs the rl extra (gymnasium is "
                                  "not installed): pip install -e \".[rl]\"")
    assert done.stderr.count("\n") == 1


def test_rl_environment_without_its_extra_is_one_line(tmp_path, lean):
    config = write_config(tmp_path, config_dict(tmp_path))
    code = ("import engine.rl\nfrom engine.errors import EngineError\ntry:\n"
            f"    engine.rl.make_env({str(config)!r})\nexcept EngineError as exc:\n"
            "    print(exc)\n")
    done = lean("-c", code)
    assert done.stdout.startswith("engine.rl.make_env needs the rl extra (gymnasium is not "
                                  "installed)"), done.stderr


@pytest.mark.slow
def test_backtest_report_compare_and_paper_run_without_the_extras(tmp_path, lean):
    candles = {"BTC/USDT": make_ohlcv(260, seed=1, price=10_000.0).round(8),
               "ETH/USDT": make_ohlcv(260, seed=2, price=200.0).round(8)}
    sizes = {"model": {"window_len": 5, "layers": 1, "units": 4, "epochs": 1},
             "walkforward": {"train_bars": 200, "retrain_every": 30, "finetune_epochs": 1},
             "strategies": ["lstm_signal", {"name": "sma_cross", "fast": 3, "slow": 8},
                            "buy_and_hold"]}
    with LoopbackExchange(candles, max_limit=100) as ex:
        ex.now_ms = int(candles["BTC/USDT"].index[-1].value // 1_000_000) + 86_400_000 + 1
        config = write_config(tmp_path, config_dict(tmp_path, ex, **sizes))
        backtest = lean("engine.backtest", config, "--no-progress")
        assert backtest.returncode == 0, backtest.stderr
        report = json.loads((tmp_path / "out" / "report.json").read_text())
        folds = report["run"]["folds_trained"]
        assert folds == len(report["folds"]) > 1
        assert (tmp_path / "out" / "report.html").stat().st_size > 100_000
        compare = lean("engine.compare", tmp_path / "out", "--output", tmp_path / "cmp")
        assert compare.returncode == 0, compare.stderr
        assert (tmp_path / "cmp" / "equity.png").is_file()
        paper = lean("engine.paper", "run", config, "--once", "--no-progress",
                     "--state", tmp_path / "paper" / "state.sqlite")
        assert paper.returncode == 0, paper.stderr
        assert "processed 1 candle(s)" in paper.stdout
        assert f"0 folds trained, {folds} reused" in paper.stderr  # the backtest's, stored
