"""A second run of btc.yaml after a strategy change: the fold models come from the store.

    python bench/rerun.py

Runs ``python -m engine.backtest`` on configs/btc.yaml (candles from the real CSV files)
twice in subprocesses with one fresh model store: first from scratch (every fold
trained), then with a strategy parameter changed (``lstm_signal.entry``), which changes no
fold's key and no fold's input windows, so every fold and its forecasts come from the
store and the second run never imports Keras. Prints both wall times and their ratio,
checks that the forecasts are byte-identical, and ends with one JSON line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import REPO, csv_files, machine


def backtest(raw: dict, tmp: Path, name: str) -> tuple[float, dict, bytes]:
    """Wall seconds, report.json and predictions.csv of one run of ``raw``."""
    config = tmp / f"{name}.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp / name
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "engine.backtest", str(config), "--output", str(out),
                    "--no-progress"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    return (wall, json.loads((out / "report.json").read_text()),
            (out / "predictions.csv").read_bytes())


def main() -> None:
    raw = yaml.safe_load((REPO / "configs" / "btc.yaml").read_text())
    raw["data"]["csv"] = csv_files(raw["data"]["symbols"])
    with tempfile.TemporaryDirectory() as tmp:
        raw["data"]["cache_dir"] = str(Path(tmp) / "cache")  # an empty model store
        first, report1, predictions1 = backtest(raw, Path(tmp), "first")
        signal = next(s for s in raw["strategies"] if s["name"] == "lstm_signal")
        signal["entry"] = 0.005  # a strategy change: no fold's key changes
        second, report2, predictions2 = backtest(raw, Path(tmp), "second")
    figures = {
        "first_s": round(first, 2), "second_s": round(second, 2),
        "ratio": round(first / second, 1),
        "first_folds_trained": report1["run"]["folds_trained"],
        "second_folds_trained": report2["run"]["folds_trained"],
        "second_folds_reused": report2["run"]["folds_reused"],
        "predictions_identical": predictions1 == predictions2,
        "second_run_seconds": report2["run"]["seconds"],
    }
    print(machine())
    print(f"python -m engine.backtest configs/btc.yaml (CSV data), empty model store: "
          f"{first:.1f} s wall ({figures['first_folds_trained']} folds trained)")
    print(f"again with lstm_signal entry 0.005: {second:.1f} s wall "
          f"({figures['second_folds_reused']} folds reused, "
          f"{figures['second_folds_trained']} trained)")
    print(f"the second run is {first / second:.1f}x faster; predictions.csv identical: "
          f"{figures['predictions_identical']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
