"""Paper trading: the time to process one candle after 100 and after 1,000 paper candles.

    python bench/paper_step.py

The paper trader runs configs/btc.yaml (its model, folds and strategy) against a loopback
exchange on 127.0.0.1 that serves the real daily BTC/USDT and ETH/USDT candles, with a
clock moved one candle at a time. Paper trading starts at bar 1,500; after 100 and after
1,000 processed candles, ten more candles are each timed alone. Candles on which the
walk-forward schedule re-fits the model are left out (a re-fit costs the same whenever it
happens); the median of the rest is reported. The goal: the later candle costs at most 1.5x
the earlier one (the strategy replays a bounded window, the state is read in bounded
pieces). The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
from _common import REPO, csv_data_config, machine

from engine.data import load_market_data
from engine.paper.state import PaperState
from engine.paper.trader import PaperTrader
from tests.loopback import LoopbackExchange

DAY = 86_400_000
START = 1_500


def candle_times(trader: PaperTrader, exchange: LoopbackExchange, index: pd.DatetimeIndex,
                 first: int, count: int) -> list[float]:
    """Seconds to process each of candles first .. first + count - 1, re-fits left out."""
    seconds = []
    for t in range(first, first + count):
        exchange.now_ms = int(index[t].value // 1_000_000) + DAY + 1
        fold = trader.state.meta().get("model_fold")
        began = time.perf_counter()
        assert trader.run_once() == 1
        took = time.perf_counter() - began
        if trader.state.meta().get("model_fold") == fold:
            seconds.append(took)
    return seconds


def main() -> None:
    cfg = csv_data_config()
    frames = load_market_data(cfg.data, progress=False).frames
    index = next(iter(frames.values())).index
    with tempfile.TemporaryDirectory() as tmp, LoopbackExchange(frames) as exchange:
        data = cfg.data.model_copy(update={
            "csv": {}, "api_url": exchange.url, "cache_dir": Path(tmp) / "cache",
            "exchange_options": {"enableRateLimit": False}, "end": None})
        live = cfg.model_copy(update={"data": data, "output_dir": Path(tmp) / "out"})
        state = PaperState.open(Path(tmp) / "state.sqlite")
        exchange.now_ms = int(index[START].value // 1_000_000) + DAY + 1
        trader = PaperTrader(live, state, now_ms=lambda: exchange.now_ms,
                             sleep=lambda s: None)
        trader.run_once()  # the first candle: the walk-forward up to bar 1,500
        exchange.now_ms = int(index[START + 99].value // 1_000_000) + DAY + 1
        trader.run_once()
        early = candle_times(trader, exchange, index, START + 100, 10)
        exchange.now_ms = int(index[START + 999].value // 1_000_000) + DAY + 1
        trader.run_once()
        late = candle_times(trader, exchange, index, START + 1_000, 10)
        state.close()
    t_early, t_late = statistics.median(early), statistics.median(late)
    print(machine())
    print(f"config: {REPO / 'configs/btc.yaml'} (strategy {trader.spec.name}), paper from "
          f"{index[START].date()}")
    print(f"one candle after   100 paper candles: {t_early * 1000:.0f} ms (median of "
          f"{len(early)})")
    print(f"one candle after 1,000 paper candles: {t_late * 1000:.0f} ms (median of "
          f"{len(late)})")
    print(f"ratio: {t_late / t_early:.2f} (goal: at most 1.5)")
    print(json.dumps({"after_100_s": round(t_early, 4), "after_1000_s": round(t_late, 4),
                      "ratio": round(t_late / t_early, 3)}))


if __name__ == "__main__":
    main()
