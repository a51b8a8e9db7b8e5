"""Wall time of ``python -m engine.backtest configs/btc.yaml`` with the candles at hand.

    python bench/btc_wall_time.py

Runs the real command in a subprocess on configs/btc.yaml as shipped, with only
``data.csv`` pointed at the real daily files (the stand-in for an already filled cache),
and reports the total and the split the report itself records.
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


def main() -> None:
    raw = yaml.safe_load((REPO / "configs" / "btc.yaml").read_text())
    raw["data"]["csv"] = csv_files(raw["data"]["symbols"])
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "btc.yaml"
        config.write_text(yaml.safe_dump(raw))
        out = Path(tmp) / "run"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "engine.backtest", str(config), "--output",
                        str(out), "--no-progress"], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        report = json.loads((out / "report.json").read_text())
    print(machine())
    print(f"python -m engine.backtest configs/btc.yaml (CSV data): {wall:.1f} s wall")
    print("report.run.seconds: " + ", ".join(f"{k} {v:.1f}"
                                              for k, v in report["run"]["seconds"].items()))
    print(f"folds: {len(report['folds'])}, test bars: {report['run']['data']['test_bars']}")
    print(json.dumps({"wall_s": round(wall, 2), "seconds": report["run"]["seconds"],
                      "folds": len(report["folds"]), "device": report["run"]["device"]}))


if __name__ == "__main__":
    main()
