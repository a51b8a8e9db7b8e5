"""configs/forecasters.yaml end to end: from an empty model store, then again.

    python bench/forecasters_wall_time.py

Runs ``python -m engine.backtest configs/forecasters.yaml`` (candles from the real CSV
files) twice in subprocesses with one fresh model store: first with every fold of the five
forecasters trained (the goal: under 15 minutes on a 2-core CPU), then again unchanged,
when every fold and forecast comes from the store (the goal: seconds). Prints both wall
times, each forecaster's training time and forecast error beside persistence, the
summary's sentences, and ends with one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import DATA, REPO, machine


def backtest(raw: dict, tmp: Path, name: str) -> tuple[float, dict, str]:
    """Wall seconds, report.json and the printed summary of one run of ``raw``."""
    config = tmp / f"{name}.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = tmp / name
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "engine.backtest", str(config), "--output",
                           str(out), "--no-progress"], cwd=REPO, check=True,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    return wall, json.loads((out / "report.json").read_text()), proc.stdout


def main() -> None:
    raw = yaml.safe_load((REPO / "configs" / "forecasters.yaml").read_text())
    raw["data"]["csv"] = {s: str(DATA / f"{s.replace('/', '-')}_1d.csv")
                          for s in raw["data"]["symbols"]}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        raw["data"]["cache_dir"] = str(Path(tmp) / "cache")  # an empty model store
        first, report, summary = backtest(raw, Path(tmp), "first")
        second, again, _ = backtest(raw, Path(tmp), "second")
    trained = {}
    for fold in report["folds"]:
        trained[fold["forecaster"]] = trained.get(fold["forecaster"], 0.0) + fold["seconds"]
    compared = report["forecast_comparison"]
    figures = {
        "first_s": round(first, 1), "second_s": round(second, 1),
        "training_s": report["run"]["seconds"]["training"],
        "train_s_by_forecaster": {k: round(v, 1) for k, v in trained.items()},
        "folds_trained": report["run"]["folds_trained"],
        "second_folds_reused": again["run"]["folds_reused"],
        "second_device": again["run"]["device"],
        "return_mse_ratio": {s: c["mse_ratio"] for s, c in compared.items()},
        "model_confidence_set": report["model_confidence_set"],
        "spa_p": {s: e["p_value"] for s, e in report["spa"].items()},
        "strategies": {f"{r['strategy']} {r['symbol']}": {
            "total_return": r["total_return"], "sharpe": r["sharpe"]}
            for r in report["strategies"]},
        "load_average_before": round(load, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }
    print(machine())
    print(f"configs/forecasters.yaml (CSV data), empty model store: {first:.1f} s wall "
          f"({figures['folds_trained']} folds trained; training {figures['training_s']} s: "
          + ", ".join(f"{k} {v} s" for k, v in figures["train_s_by_forecaster"].items())
          + ")")
    print(f"again, unchanged: {second:.1f} s wall ({figures['second_folds_reused']} folds "
          f"reused; device: {figures['second_device']})")
    print("\n".join(line for line in summary.splitlines()
                    if "the best forecaster is" in line or "SPA p-value" in line))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
