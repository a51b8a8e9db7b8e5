"""Shared helpers for the benchmark scripts: the machine, the real data, a timer.

The candles are daily CSV files in ``csv/`` of the repository (see ``DATA``), or in the
folder ``ENGINE_BENCH_DATA`` names.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# The folder README's `python -m engine.data configs/compare.yaml --export-csv csv` writes
# (run from the repository root); ENGINE_BENCH_DATA names another one.
DATA = Path(os.environ.get("ENGINE_BENCH_DATA", REPO / "csv"))

from engine.config import load_config  # noqa: E402  (the repository is on the path now)


def machine() -> str:
    """One line describing where the numbers were measured."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from models.lstm import keras  # defers Keras (with TensorFlow's start-up lines filtered)

    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), "
            f"Python {platform.python_version()}, Keras {keras.__version__} "
            f"({keras.backend.backend()})")


def csv_files(symbols) -> dict[str, str]:
    """``{symbol: DATA/<BASE>-<QUOTE>_1d.csv}``; exits with one line when one is missing."""
    csv = {s: str(DATA / f"{s.replace('/', '-')}_1d.csv") for s in symbols}
    missing = [p for p in csv.values() if not Path(p).is_file()]
    if missing:
        sys.exit(f"bench: no candles at {missing[0]}: run `python -m engine.data "
                 "configs/compare.yaml --export-csv csv` in the repository once (it writes "
                 "csv/), or set ENGINE_BENCH_DATA to a folder with BTC-USDT_1d.csv and "
                 "ETH-USDT_1d.csv")
    return csv


def csv_data_config(config: str = "configs/btc.yaml"):
    """A shipped config with its candles read from the real CSV files in ``DATA``."""
    cfg = load_config(REPO / config)
    csv = csv_files(cfg.data.symbols)
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"csv": csv})})


def best_of(runs: int, fn) -> float:
    """The shortest of ``runs`` timings of ``fn()``, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@contextmanager
def timed(label: str, into: dict):
    start = time.perf_counter()
    yield
    into[label] = time.perf_counter() - start
