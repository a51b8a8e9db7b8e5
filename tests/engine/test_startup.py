"""Start-up: arguments and the config are checked before the heavy modules are imported.

Each case runs in a fresh interpreter (``sys.modules`` of the test process already holds
everything) and lists which heavy packages the command had imported when it answered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ccxt

from engine.config import exchange_ids, load_config
from tests.conftest import config_dict, write_config

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("backtrader", "ccxt", "scipy", "keras", "tensorflow", "matplotlib", "plotly",
         "strategies.registry")
_PROBE = """
import json, sys
from engine.cli import run_cli
from {module} import main
status = None
try:
    status = run_cli(main, {argv!r})
except SystemExit as exc:
    status = exc.code
print(json.dumps({{"status": status, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def _probe(module: str, argv: list[str]) -> tuple[dict, str]:
    code = _PROBE.format(module=module, argv=argv, heavy=HEAVY)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_help_imports_nothing_heavy():
    result, _ = _probe("engine.backtest", ["--help"])
    assert result == {"status": 0, "heavy": []}


def test_a_config_error_is_reported_before_heavy_imports(tmp_path):
    config = write_config(tmp_path, config_dict(tmp_path, model={"dropuot": 0.1}))
    result, err = _probe("engine.backtest", [str(config)])
    assert result == {"status": 2, "heavy": []}
    assert "unknown key model.dropuot (did you mean 'model.dropout'?)" in err


def test_a_strategy_error_is_reported_before_the_data_is_read(tmp_path):
    # The CSV file does not exist either: the strategy is checked first, and the
    # heavy parts of a run (data, SciPy, plotting, Keras) are never imported.
    raw = config_dict(tmp_path, data={"csv": {"BTC/USDT": str(tmp_path / "missing.csv")}},
                      strategies=[{"name": "sma_cross", "fast": 30, "slow": 10}])
    config = write_config(tmp_path, raw)
    result, err = _probe("engine.backtest", [str(config)])
    assert result["status"] == 2
    assert err.strip() == f"error: {config}: strategies[0].slow = 10 must be greater than " \
                          "fast (30)"
    assert set(result["heavy"]) <= {"backtrader", "strategies.registry"}


def test_reading_a_config_imports_no_strategy(tmp_path):
    config = write_config(tmp_path, config_dict(tmp_path, strategies=[{"name": "nope"}]))
    code = ("import sys, json; from engine.config import load_config; "
            f"load_config({str(config)!r}); "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert json.loads(done.stdout) == []
    assert load_config(config).strategies[0].name == "nope"  # checked where it is built


def test_exchange_ids_are_ccxts_without_importing_it():
    assert list(exchange_ids()) == sorted(ccxt.exchanges)


def test_reading_a_sweep_file_imports_no_strategy(tmp_path):
    from tests.engine.sweep.conftest import sweep_dict, write_candles, write_sweep

    path = write_sweep(tmp_path / "sweep.yaml",
                       sweep_dict(write_candles(tmp_path / "data"), tmp_path / "out"))
    code = ("import sys, json; from engine.sweep.spec import load_sweep; "
            f"load_sweep({str(path)!r}); "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert json.loads(done.stdout) == [], done.stderr
