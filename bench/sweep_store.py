"""A sweep over strategy parameters with an empty model store vs with the store filled.

The sweep: btc.yaml's candles (CSV), `lstm_signal`'s entry x exit thresholds (6 trials on
the fast path), the last 365 bars held out. Run 1 starts from an empty model store: its
first trial trains the selection period's folds, and the chosen trial's run for the
holdout trains the rest, storing all of them (as a backtest of btc.yaml would). Run 2 is
the same sweep in a new directory: every fold comes from the store. Printed: each run's
wall time and the time from its start to its first finished trial.

    python bench/sweep_store.py
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import yaml
from _common import REPO, csv_files, machine

SPACE = {"strategies.lstm_signal.entry": [0.0, 0.005, 0.02],
         "strategies.lstm_signal.exit": [0.0, -0.005]}


def sweep_once(folder: Path, name: str, store: Path) -> dict[str, float]:
    """Run the sweep into ``folder/name``; its wall time and time to the first trial."""
    from engine.sweep.runner import run_sweep
    from engine.sweep.spec import load_sweep

    base = yaml.safe_load((REPO / "configs/btc.yaml").read_text())
    base["data"]["csv"] = csv_files(base["data"]["symbols"])
    base["data"]["model_store"] = str(store)
    sweep = {"base": base, "search": "grid", "space": SPACE,
             "objective": {"metric": "sharpe", "strategy": "lstm_signal"},
             "split": {"holdout_bars": 365}, "output_dir": str(folder / name)}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    started_wall = time.time()
    start = time.perf_counter()
    run_sweep(load_sweep(path), progress=False)
    seconds = time.perf_counter() - start
    finished = [json.loads(p.read_text())["finished"]
                for p in (folder / name / "trials").glob("*/result.json")]
    trials = json.loads((folder / name / "summary.json").read_text())["trials"]
    return {"seconds": round(seconds, 1), "first_trial_s": round(min(finished) - started_wall, 1),
            "trials": trials}


def main() -> None:
    print(machine())
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder, store = Path(tmp), Path(tmp) / "models"
        empty = sweep_once(folder, "empty_store", store)
        entries = sum(1 for p in store.iterdir() if p.is_dir() and not p.name.startswith("."))
        filled = sweep_once(folder, "filled_store", store)
    figures = {"empty_store": empty, "filled_store": filled, "stored_folds": entries,
               "ratio": round(empty["seconds"] / filled["seconds"], 2),
               "load_average_before": round(load_before, 2),
               "load_average_after": round(os.getloadavg()[0], 2)}
    print(f"empty store: {empty['seconds']} s (first trial after {empty['first_trial_s']} s); "
          f"filled store ({entries} folds): {filled['seconds']} s (first trial after "
          f"{filled['first_trial_s']} s): {figures['ratio']}x")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
