"""Wall time of ``python -m engine.sweep configs/sweep_btc.yaml`` with the candles at hand.

    python bench/sweep_btc_wall_time.py

Runs the real command in a subprocess on configs/sweep_btc.yaml as shipped, its base
configs/btc.yaml with only ``data.csv`` pointed at the real daily files (the stand-in for
an already filled cache), on a local Ray over every core. The goal is under 20 minutes on
a 2-core CPU. The machine's load average is printed too: other work on the same cores
slows every trial.
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
from _common import REPO, csv_files, machine


def main() -> None:
    base = yaml.safe_load((REPO / "configs" / "btc.yaml").read_text())
    base["data"]["csv"] = csv_files(base["data"]["symbols"])
    sweep = yaml.safe_load((REPO / "configs" / "sweep_btc.yaml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        sweep["base"] = str(Path(tmp) / "btc.yaml")
        Path(sweep["base"]).write_text(yaml.safe_dump(base))
        path = Path(tmp) / "sweep_btc.yaml"
        path.write_text(yaml.safe_dump(sweep))
        out = Path(tmp) / "sweep"
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "engine.sweep", str(path), "--output",
                               str(out)], cwd=REPO, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        load_after = os.getloadavg()[0]
        summary = json.loads((out / "summary.json").read_text())
    print(machine())
    print(proc.stdout.strip())
    print(f"python -m engine.sweep configs/sweep_btc.yaml (CSV data): {wall:.1f} s wall, "
          f"{summary['trials']} trials; load average {load_before:.1f} before, "
          f"{load_after:.1f} after")
    print(json.dumps({"wall_s": round(wall, 1), "trials": summary["trials"],
                      "best_trial": summary["best_trial"], "best_params": summary["best_params"],
                      "selection_sharpe": summary["best_objective"],
                      "holdout_sharpe": summary["holdout"]["objective"], "psr": summary["psr"],
                      "dsr": summary["dsr"], "pbo": summary["pbo"],
                      "load_average_before": round(load_before, 2),
                      "load_average_after": round(load_after, 2)}))


if __name__ == "__main__":
    main()
