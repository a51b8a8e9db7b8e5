"""One model call per bar vs one batched call per fold, on the btc.yaml forecaster.

    python bench/forecast_batching.py

Fits the btc.yaml model once on the first 1,000 real daily bars, then forecasts the
next 1,500 windows both ways and prints the time of each and their ratio.
"""

from __future__ import annotations

import json

import numpy as np
from _common import csv_data_config, machine, timed

from engine.data import load_market_data
from models import lstm
from models.features import build_windows


def main() -> None:
    cfg = csv_data_config()
    market = load_market_data(cfg.data, progress=False)
    windows = build_windows(market.frames, cfg.model)
    train = windows.select(windows.end < 999)
    ahead = windows.select((windows.end >= 999) & (windows.end < 999 + 1500))
    lstm.seed_everything(cfg.model.seed)
    model = lstm.build_model(cfg.model, windows.X.shape[2], len(market.frames))
    lstm.fit(model, train.X, train.y, 2, cfg.model.batch_size)
    lstm.predict(model, ahead.X[:1])  # warm both call shapes up once
    lstm.predict(model, ahead.X)
    times: dict[str, float] = {}
    with timed("per_bar", times):
        single = np.vstack([lstm.predict(model, ahead.X[i:i + 1]) for i in range(len(ahead))])
    with timed("batched", times):
        batched = lstm.predict(model, ahead.X)
    assert np.allclose(single, batched, rtol=1e-4, atol=1e-6)
    print(machine())
    print(f"windows forecast: {len(ahead)}")
    print(f"one call per bar: {times['per_bar']:.2f} s "
          f"({1000 * times['per_bar'] / len(ahead):.1f} ms per bar)")
    print(f"one batched call: {times['batched']:.3f} s")
    print(f"ratio per-bar / batched: {times['per_bar'] / times['batched']:.0f}x")
    print(json.dumps({"windows": len(ahead), "per_bar_s": round(times["per_bar"], 4),
                      "batched_s": round(times["batched"], 4),
                      "ratio": round(times["per_bar"] / times["batched"], 1)}))


if __name__ == "__main__":
    main()
