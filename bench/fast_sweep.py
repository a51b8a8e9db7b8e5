"""The sweep's fast path: the numba kernel against backtrader and against vectorbt.

    python bench/fast_sweep.py

All on the real daily BTC/USDT bars of configs/btc.yaml, with fixed random forecasts (as
bench/backtest_speed.py uses) and trading from bar ``walkforward.train_bars`` on, the
first bar btc.yaml's walk-forward forecasts. The bars are converted to arrays once
(``kernel.prices``), as a sweep does.

(a) Bars per second over the same small grid (lstm_signal entry x exit and sma_cross fast
    x slow, 12 parameter sets): ``engine.simulation.simulate`` (backtrader) against the
    kernel. The kernel is timed alone (decision arrays ready) and end to end (the
    strategies' ``weights_array`` plus the kernel, averages shared across the grid as a
    sweep shares them). Each kernel side is the best of 5 runs; the backtrader side runs
    once (it takes seconds). Every kernel equity is checked against backtrader's.
(b) Wall time of a 10,000-set grid: lstm_signal entry (100 values) x exit (50) plus
    sma_cross fast (50) x slow (100), each set scored as a fast-path trial is (decision
    array, kernel, ``trading_metrics``), one process. Also the time without the metrics.
(c) The same 10,000 sets as the sweep's trial loop runs them (``engine.sweep.runner``'s
    in-process fast path: each trial's config validated, scored with the forecast's
    mse_ratio, its result.json and returns.parquet written), as two sweeps of btc.yaml
    (with sma_cross added) holding out its last 365 bars like configs/sweep_btc.yaml; the
    saved walk-forward they read holds the same random forecasts.
(d) The 5,000-set SMA grid of (b) (fast 1..50 x slow 51..150), decisions and simulation,
    beside vectorbt's ``Portfolio.from_signals`` on the same grid in the same run: long
    while the fast average is above the slow one, decided at a close and filled at the
    next open, 0.1% fees and 0.05% slippage, all cash, from the same first traded bar;
    vectorbt computes each of the 150 averages once too (``vbt.MA.run``). Both sides are
    compiled first and timed best of 2; their final equities are compared as a check that
    they ran the same grid. Skipped, with a note, when vectorbt is not installed (``pip
    install -e ".[bench]"``).

The last line printed is one JSON object with the figures (``vs_vectorbt``: vectorbt's
time over the engine's for the whole grid of (d)).
"""

from __future__ import annotations

import itertools
import json
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import best_of, csv_data_config, machine

from engine.config import validate_config
from engine.data import load_market_data
from engine.execution import StrategyRun, cost_model
from engine.execution.kernel import prices
from engine.execution.kernel import run as run_kernel
from engine.report import trading_metrics
from engine.simulation import simulate
from engine.sweep.fast import uses_fast_path, warm_up
from engine.sweep.runner import run_in_process, split_market
from engine.sweep.spec import SweepFile, SweepSpec
from engine.sweep.trial import finished, forecast_key
from engine.timeframes import periods_per_year
from engine.walkforward import WalkForwardResult
from strategies.lstm_signal import LSTMSignal
from strategies.sma_cross import SMACross

SYMBOL = "BTC/USDT"
SMALL_GRID = ([(LSTMSignal, {"entry": e, "exit": x}) for e in (0.0, 0.005, 0.01)
               for x in (-0.01, 0.0)]
              + [(LSTMSignal, {"entry": 0.005, "exit": 0.0, "short": True, "size": 0.5})]
              + [(SMACross, {"fast": f, "slow": s}) for f in (5, 10) for s in (30, 50)]
              + [(SMACross, {"fast": 10, "slow": 30, "short": True})])
SMA_PAIRS = list(itertools.product(range(1, 51), range(51, 151)))


def big_grid() -> list[tuple[type, dict]]:
    entries = np.round(np.linspace(0.0, 0.02, 100), 6)
    exits = np.round(np.linspace(-0.02, 0.0, 50), 6)
    lstm = [(LSTMSignal, {"entry": float(e), "exit": float(x)})
            for e, x in itertools.product(entries, exits)]
    return lstm + [(SMACross, {"fast": f, "slow": s}) for f, s in SMA_PAIRS]


def fake_walk_forward(market, start: int, rng: np.random.Generator) -> WalkForwardResult:
    """A walk-forward result holding random forecasts from bar ``start`` on."""
    tables = {}
    for symbol, frame in market.frames.items():
        ret = rng.normal(0, 0.02, len(frame) - 1 - start)
        index = frame.index[start:-1]
        closes = frame["close"].to_numpy()[start:-1]
        tables[symbol] = pd.DataFrame({
            "pred_close": closes * (1 + ret), "pred_return": ret, "pred_target": ret,
            "base_close": closes, "target": frame.index[start + 1:], "fold": 0}, index=index)
    return WalkForwardResult(tables, [], 0.0, start)


def sweep_trials(cfg, grid: list[tuple[type, dict]], start: int) -> tuple[float, int]:
    """Run ``grid`` through the sweep's in-process trial loop; (seconds, trials scored)."""
    base = cfg.to_dict()
    base["strategies"] = [{"name": "lstm_signal"}, {"name": "sma_cross"}]
    market = load_market_data(cfg.data, progress=False)
    seconds, scored = 0.0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("lstm_signal", "sma_cross"):
            points = [{f"strategies.{name}.{k}": v for k, v in params.items()}
                      for cls, params in grid if cls.name == name]
            space = {k: sorted({p[k] for p in points}) for k in points[0]}
            raw = SweepFile(base=base, space=space, objective={"metric": "sharpe",
                            "strategy": name}, split={"holdout_bars": 365})
            spec = SweepSpec(raw, validate_config(base, label="bench"), "bench",
                             Path(tmp) / name)
            assert uses_fast_path(spec)
            selection = split_market(spec, market).selection
            root = Path(tmp) / name / "trials"
            forecasts = root.parent / "forecasts"
            forecasts.mkdir(parents=True)
            key = forecast_key(spec.base, selection)
            wf = fake_walk_forward(selection, start, np.random.default_rng(1))
            (forecasts / f"{key}.pkl").write_bytes(pickle.dumps(wf))
            started = time.perf_counter()
            run_in_process(spec, selection, root, points, {}, progress=False)
            seconds += time.perf_counter() - started
            records = finished(root).values()
            scored += sum(r["objective"] is not None and r["metrics"]["forecasts_reused"]
                          for r in records)
    return seconds, scored


def engine_sma_grid(frame: pd.DataFrame, start: int, broker) -> np.ndarray:
    """Final equity of every SMA pair: decision arrays (each average computed once for
    the grid) and the kernel, from a cold cache."""
    bars, costs, cache = prices(frame), cost_model(broker), {}
    finals = np.empty(len(SMA_PAIRS))
    for i, (fast, slow) in enumerate(SMA_PAIRS):
        weights = SMACross.weights_array({"fast": fast, "slow": slow}, frame, None, SYMBOL, cache)
        finals[i] = run_kernel(bars, weights, start, broker.cash, costs,
                               broker.leverage).equity[-1]
    return finals


def vectorbt_sma_grid(vbt, frame: pd.DataFrame, start: int, broker) -> np.ndarray:
    """Final value of every SMA pair with vectorbt: each average once (``vbt.MA.run``),
    entry/exit signals per pair, ``Portfolio.from_signals`` filling at the next open."""
    close, open_ = frame["close"], frame["open"]
    averages = vbt.MA.run(close, window=list(range(1, 151))).ma.to_numpy()
    fast = averages[:, [f - 1 for f, _ in SMA_PAIRS]]
    slow = averages[:, [s - 1 for _, s in SMA_PAIRS]]
    decided = ~np.isnan(slow)
    decided[:start] = False  # decisions from the first traded bar's close on
    above = fast > slow
    entries = np.zeros_like(above)
    exits = np.zeros_like(above)
    entries[1:] = (above & decided)[:-1]  # decided at close t, filled at open t + 1
    exits[1:] = (~above & decided)[:-1]
    portfolio = vbt.Portfolio.from_signals(
        close, entries, exits, price=open_, fees=broker.commission,
        slippage=broker.slippage, init_cash=broker.cash, freq="1D")
    return np.asarray(portfolio.final_value(), dtype="float64")


def vectorbt_side(frame: pd.DataFrame, start: int, broker) -> dict | None:
    """(d): the engine and vectorbt on the SMA grid; None when vectorbt is missing."""
    try:
        import vectorbt as vbt  # optional: the bench extra
    except ImportError:
        return None
    warm = frame.iloc[: start + 200]  # compiles vectorbt's numba functions before timing
    vectorbt_sma_grid(vbt, warm, start, broker)
    engine_final = engine_sma_grid(frame, start, broker)
    vbt_final = vectorbt_sma_grid(vbt, frame, start, broker)
    t_engine = best_of(2, lambda: engine_sma_grid(frame, start, broker))
    t_vbt = best_of(2, lambda: vectorbt_sma_grid(vbt, frame, start, broker))
    diff = np.abs(engine_final / vbt_final - 1)
    return {"version": vbt.__version__, "engine_seconds": t_engine, "vectorbt_seconds": t_vbt,
            "median_final_diff": float(np.median(diff)), "max_final_diff": float(diff.max())}


def main() -> None:
    cfg = csv_data_config()
    frame = load_market_data(cfg.data, progress=False).frames[SYMBOL]
    rng = np.random.default_rng(0)
    returns = rng.normal(0, 0.02, len(frame))
    forecasts = pd.DataFrame({"pred_close": frame["close"] * (1 + returns),
                              "pred_return": returns}, index=frame.index)
    start = int(cfg.walkforward.train_bars)
    broker, costs = cfg.broker, cost_model(cfg.broker)
    bars, n_bars = prices(frame), len(frame)
    warm_up()

    # (a) the same small grid both ways
    started = time.perf_counter()
    slow_runs = [simulate({SYMBOL: frame}, cls, params, broker, trade_start=frame.index[start],
                          forecasts={SYMBOL: forecasts}) for cls, params in SMALL_GRID]
    t_bt = time.perf_counter() - started
    arrays = [cls.weights_array(params, frame, forecasts, SYMBOL) for cls, params in SMALL_GRID]
    for weights, slow in zip(arrays, slow_runs, strict=True):
        fast = run_kernel(bars, weights, start, broker.cash, costs, broker.leverage)
        np.testing.assert_allclose(fast.equity, slow.equity.to_numpy(), rtol=1e-9)

    def kernel_only():
        for weights in arrays:
            run_kernel(bars, weights, start, broker.cash, costs, broker.leverage)

    def end_to_end():
        cache: dict = {}
        for cls, params in SMALL_GRID:
            run_kernel(bars, cls.weights_array(params, frame, forecasts, SYMBOL, cache), start,
                       broker.cash, costs, broker.leverage)

    t_kernel, t_e2e = best_of(5, kernel_only), best_of(5, end_to_end)
    grid_bars = n_bars * len(SMALL_GRID)

    # (b) 10,000 parameter sets scored as fast-path trials
    grid = big_grid()
    per_year = periods_per_year(cfg.data.timeframe)
    index = frame.index[start:]
    cache: dict = {}
    scores = []
    started = time.perf_counter()
    for cls, params in grid:
        result = run_kernel(bars, cls.weights_array(params, frame, forecasts, SYMBOL, cache),
                            start, broker.cash, costs, broker.leverage)
        run = StrategyRun(cls.name, SYMBOL, pd.Series(result.equity, index),
                          pd.DataFrame({SYMBOL: result.position}, index=index),
                          fees=result.fees)
        scores.append(trading_metrics(run, per_year,
                                      trades=(result.trade_pnl, result.trade_bars))["sharpe"])
    t_grid = time.perf_counter() - started
    cache = {}
    started = time.perf_counter()
    for cls, params in grid:
        run_kernel(bars, cls.weights_array(params, frame, forecasts, SYMBOL, cache), start,
                   broker.cash, costs, broker.leverage)
    t_grid_kernel = time.perf_counter() - started

    # (c) the same sets through the sweep's trial loop
    t_sweep, scored = sweep_trials(cfg, grid, start)

    # (d) the SMA grid beside vectorbt
    vbt = vectorbt_side(frame, start, broker)

    print(machine())
    print(f"bars: {n_bars} (traded from bar {start}); small grid: {len(SMALL_GRID)} sets")
    print(f"backtrader (simulate):   {grid_bars / t_bt:,.0f} bars/s ({t_bt:.2f} s)")
    print(f"kernel alone:            {grid_bars / t_kernel:,.0f} bars/s ({t_kernel * 1e3:.2f} ms)"
          f": {t_bt / t_kernel:,.0f}x")
    print(f"weights_array + kernel:  {grid_bars / t_e2e:,.0f} bars/s ({t_e2e * 1e3:.1f} ms)"
          f": {t_bt / t_e2e:,.0f}x")
    print(f"10,000-set grid ({len(grid)} sets, {len(grid) * n_bars:,} bars): {t_grid:.1f} s with "
          f"metrics, {t_grid_kernel:.1f} s arrays + kernel only; best Sharpe "
          f"{np.nanmax(np.array(scores, dtype=float)):.2f}")
    print(f"the same sets as sweep trials (files written): {t_sweep:.1f} s, {scored} scored")
    figures = {
        "bars": n_bars, "small_grid_sets": len(SMALL_GRID),
        "backtrader_bars_per_s": round(grid_bars / t_bt),
        "kernel_bars_per_s": round(grid_bars / t_kernel),
        "kernel_ratio": round(t_bt / t_kernel, 1),
        "end_to_end_bars_per_s": round(grid_bars / t_e2e),
        "end_to_end_ratio": round(t_bt / t_e2e, 1),
        "grid_sets": len(grid), "grid_seconds": round(t_grid, 2),
        "grid_seconds_without_metrics": round(t_grid_kernel, 2),
        "sweep_trials_seconds": round(t_sweep, 1), "sweep_trials_scored": scored,
        "sma_grid_sets": len(SMA_PAIRS)}
    if vbt is None:
        print("vectorbt is not installed: the side-by-side (d) was skipped "
              '(pip install -e ".[bench]")')
        figures["vs_vectorbt"] = None
    else:
        print(f"SMA grid ({len(SMA_PAIRS)} sets, decisions and simulation): engine "
              f"{vbt['engine_seconds']:.2f} s, vectorbt {vbt['version']} "
              f"{vbt['vectorbt_seconds']:.2f} s: vectorbt takes "
              f"{vbt['vectorbt_seconds'] / vbt['engine_seconds']:.1f}x as long; final equity "
              f"differs by {vbt['median_final_diff']:.2%} (median), "
              f"{vbt['max_final_diff']:.2%} (largest)")
        figures.update(vectorbt_version=vbt["version"],
                       sma_grid_engine_seconds=round(vbt["engine_seconds"], 3),
                       sma_grid_vectorbt_seconds=round(vbt["vectorbt_seconds"], 3),
                       sma_grid_final_diff_median=round(vbt["median_final_diff"], 5),
                       vs_vectorbt=round(vbt["vectorbt_seconds"] / vbt["engine_seconds"], 2))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
