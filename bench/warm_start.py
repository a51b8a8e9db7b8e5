"""Warm-start vs from-scratch walk-forward on the btc.yaml settings and real data.

    python bench/warm_start.py

Runs the walk-forward of configs/btc.yaml twice over the real daily BTC and ETH candles:
warm (each fold continues from the last for finetune_epochs) and cold (each fold trains
a new model for model.epochs). Prints the time of each, their ratio, and the forecast MSE
of each beside the persistence MSE on the same bars.
"""

from __future__ import annotations

import json

from _common import csv_data_config, machine, timed

from engine.data import load_market_data
from engine.report import forecast_metrics
from engine.walkforward import run_walkforward


def main() -> None:
    cfg = csv_data_config()
    market = load_market_data(cfg.data, progress=False)
    times: dict[str, float] = {}
    results = {}
    for name, warm in (("warm", True), ("cold", False)):
        wf = cfg.walkforward.model_copy(update={"warm_start": warm})
        with timed(name, times):
            results[name] = run_walkforward(market.frames, cfg.model, wf, None, progress=False)
    print(machine())
    print(f"folds: {len(results['warm'].folds)}, epochs: first {cfg.model.epochs}, "
          f"warm re-fit {cfg.walkforward.finetune_epochs}, cold re-fit {cfg.model.epochs}")
    for name in ("warm", "cold"):
        line = [f"{name}: {times[name]:.1f} s"]
        for symbol, table in results[name].forecasts.items():
            m = forecast_metrics(table, market.frames[symbol]["close"])
            line.append(f"{symbol} MSE {m['mse']:.5f} (persistence {m['persistence']['mse']:.5f})")
        print("; ".join(line))
    print(f"time ratio cold / warm: {times['cold'] / times['warm']:.1f}x")
    mse = {name: {s: forecast_metrics(t, market.frames[s]["close"])["mse"]
                  for s, t in results[name].forecasts.items()} for name in ("warm", "cold")}
    print(json.dumps({"warm_s": round(times["warm"], 2), "cold_s": round(times["cold"], 2),
                      "ratio": round(times["cold"] / times["warm"], 3), "mse": mse}))


if __name__ == "__main__":
    main()
