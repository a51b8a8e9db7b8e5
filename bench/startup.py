"""Start-up time of ``python -m engine.backtest``: --help, a config error, a strategy error.

Each case runs the command in a new interpreter (best of 5 wall times) beside two
references measured the same way: the bare interpreter (``python -c pass``) and importing
everything a run needs (``engine.pipeline``), which is what the command cost before it
checked its arguments and the config first. Goal: under 1.5 s for --help and for a config
error on an idle machine. The load average is printed with the figures: on a shared
machine every number grows with it.

    python bench/startup.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO

RUNS = 5
GOAL_S = 1.5


def wall(args: list[str], expect: int) -> float:
    """The shortest of ``RUNS`` wall times of ``python args`` (exit status checked)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    best = float("inf")
    for _ in range(RUNS):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                              text=True)
        best = min(best, time.perf_counter() - start)
        if done.returncode != expect:
            sys.exit(f"bench: {' '.join(args)} exited {done.returncode}: {done.stderr[-300:]}")
    return best


def main() -> None:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        typo = Path(tmp) / "typo.yaml"
        typo.write_text("model:\n  dropuot: 0.1\n")
        strategy = Path(tmp) / "strategy.yaml"
        strategy.write_text("strategies:\n  - {name: sma_cross, fast: 30, slow: 10}\n")
        figures = {
            "python_bare_s": wall(["-c", "pass"], 0),
            "backtest_help_s": wall(["-m", "engine.backtest", "--help"], 0),
            "config_error_s": wall(["-m", "engine.backtest", str(typo)], 2),
            "strategy_error_s": wall(["-m", "engine.backtest", str(strategy)], 2),
            "import_pipeline_s": wall(["-c", "import engine.pipeline"], 0),
        }
    figures["load_average_before"] = round(load_before, 2)
    figures["load_average_after"] = round(os.getloadavg()[0], 2)
    figures = {k: round(v, 3) for k, v in figures.items()}
    for key in ("backtest_help_s", "config_error_s", "strategy_error_s"):
        figures[key.replace("_s", "_vs_import_pipeline")] = round(
            figures[key] / figures["import_pipeline_s"], 3)
    figures["goal_s"] = GOAL_S
    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, load average "
          f"{figures['load_average_before']} before, {figures['load_average_after']} after "
          f"(best of {RUNS} runs each)")
    for key in ("python_bare_s", "backtest_help_s", "config_error_s", "strategy_error_s",
                "import_pipeline_s"):
        print(f"  {key:<20} {figures[key]:6.2f} s")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
