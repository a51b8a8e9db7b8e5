"""Training speed: the older one-fit-per-epoch loop vs models.training, on btc.yaml's folds.

    ENGINE_BENCH_DATA=/work/shared/data python bench/train_speed.py [--seeds 3] [--members 5]
        [--folds N]

Runs configs/btc.yaml's walk-forward (``engine.walkforward.run_walkforward``: 69 folds of
a 2 x 32 LSTM over the real daily BTC and ETH candles, 20 epochs for the first fold, 5 per
warm re-fit; no model store) once per seed with each training loop:

- old: one Keras ``fit(epochs=1, shuffle=False)`` per epoch on the rows permuted by
  ``default_rng(seed)`` (the loop before models.training, kept here only to compare);
- new: ``models.training.train`` (what ``models.lstm.fit`` runs).

It prints folds per second of each (training and forecasting, the whole walk), their
ratio (``speedup``), and the forecast mse_ratio (model MSE over persistence MSE, as the
report computes it) of BTC/USDT and ETH/USDT averaged over the seeds; then the walk of a
``--members`` seed forecaster (one stacked ``models.ensemble`` model) against one seed
(``seeds5_cost``); then the ceiling: the steps per second of a hand-written loop (one
``jax.jit`` of ``lax.scan`` over a chunk of steps of the same model through
``stateless_call``, compiled once and timed without compilation) turned into folds per
second for the walk's training steps (training only), and the same loop over
``--members`` copies of the model at once (``jax.vmap`` over the member axis), whose
time over one model's is the least the members can cost on this machine
(``ceiling_members_cost``). The ceiling runs in a subprocess
with ``KERAS_BACKEND=jax`` and needs JAX (``pip install -e ".[jax]"``); without it, it is
reported as null. Every timing line carries the load average, since other work on the
machine slows both loops.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from _common import REPO, csv_data_config, machine

CHUNK = 256  # steps per compiled call of the ceiling loop


def old_fit(model: Any, X: np.ndarray, y: np.ndarray, epochs: int, batch_size: int,
            seed: int) -> list[float]:
    """The older loop: one Keras fit per epoch over rows permuted by default_rng(seed)."""
    from models.keras_env import filtered_stderr

    rng = np.random.default_rng(seed)
    y = y.astype("float32")
    losses = []
    with filtered_stderr():
        for _ in range(epochs):
            order = rng.permutation(len(X))
            history = model.fit(X[order], y[order], epochs=1, batch_size=batch_size,
                                shuffle=False, verbose=0)
            losses.append(float(history.history["loss"][-1]))
    return losses


@contextlib.contextmanager
def loop(name: str) -> Iterator[None]:
    """Train every fold with the ``name`` loop ("old" or "new") inside the block."""
    from models import lstm

    new_fit = lstm.fit
    if name == "old":
        lstm.fit = old_fit  # NeuralModel.fit calls lstm.fit: the walk itself is unchanged
    try:
        yield
    finally:
        lstm.fit = new_fit


class Walk:
    """btc.yaml's walk-forward over the real candles, as ``engine.backtest`` runs it."""

    def __init__(self, limit: int | None) -> None:
        from engine.config import forecaster_from_model
        from engine.data import load_market_data

        cfg = csv_data_config()
        self.frames = load_market_data(cfg.data, progress=False).frames
        self.entry = forecaster_from_model(cfg.model)
        self.wf, self.limit = cfg.walkforward, limit
        self.closes = {s: f["close"] for s, f in self.frames.items()}
        if limit is not None:  # the first ``limit`` folds: cut the candles after them
            from engine.folds import fold_plan

            plans = fold_plan(next(iter(self.frames.values())).index, self.wf,
                              self.entry.window_len)
            end = plans[min(limit, len(plans)) - 1].forecast_end
            self.frames = {s: f.iloc[:end] for s, f in self.frames.items()}

    def run(self, seed: int, seeds: int = 1) -> tuple[float, Any]:
        """Seconds for the whole walk-forward (training and forecasting) and its result."""
        from engine.walkforward import run_walkforward
        from models import training

        training.clear_compiled()  # every walk pays its compilation, as one backtest does
        entry = self.entry.model_copy(update={"seed": seed, "seeds": seeds})
        start = time.perf_counter()
        result = run_walkforward(self.frames, [entry], self.wf, progress=False)
        return time.perf_counter() - start, result

    def mse_ratio(self, result: Any, member: int | None = None) -> dict[str, float]:
        """Forecast MSE over persistence MSE per symbol (``engine.report``'s definition)."""
        from engine.report.metrics import forecast_metrics

        fc = next(iter(result.by_name.values()))
        tables = fc.forecasts if member is None else fc.members[member]
        return {s: forecast_metrics(t, self.closes[s], fc.target)["mse_ratio"]
                for s, t in tables.items()}

    def steps(self, result: Any) -> int:
        """Training steps of every fold together."""
        batch = self.entry.batch_size
        return sum(f.epochs * -(-f.train_windows // batch) for f in result.folds)


def load() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def ceiling_steps_per_s(members: int) -> dict | None:
    """Steps per second of the hand-written JAX loop, from a subprocess."""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, __file__, "--ceiling-only", "--members",
                           str(members)], env=env,
                          capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        print(f"ceiling: not measured (the JAX backend did not run: "
              f"{(done.stderr.strip().splitlines() or ['?'])[-1]})")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def ceiling_run(members: int) -> None:
    """(In the subprocess.) A jitted lax.scan over CHUNK steps of the btc.yaml model on
    random batches of the real shape: forward, MSE, gradients, Adam; nothing else. Then
    the same for ``members`` models at once, vmapped over a member axis."""
    import jax
    import jax.numpy as jnp

    from engine.config import load_config
    from models import lstm, training

    cfg = load_config(REPO / "configs" / "btc.yaml").model
    n_features, n_out, batch = 2 * len(cfg.features), 2, cfg.batch_size
    training.seed_everything(cfg.seed)
    model = lstm.build_model(cfg, n_features, n_out)
    model.optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.normal(0, 0.1, (CHUNK, batch, cfg.window_len, n_features)),
                     dtype="float32")
    ys = jnp.asarray(rng.normal(0, 0.05, (CHUNK, batch, n_out)), dtype="float32")

    def loss_fn(tv, ntv, x, y):
        pred, ntv = model.stateless_call(tv, ntv, x, training=True)
        return jnp.mean((pred - y) ** 2), ntv

    grad = jax.value_and_grad(loss_fn, has_aux=True)

    def step(state, batch_xy):
        tv, ntv, ov = state
        (loss, ntv), g = grad(tv, ntv, *batch_xy)
        tv, ov = model.optimizer.stateless_apply(ov, g, tv)
        return (tv, ntv, ov), loss

    def timed(step_fn, state):
        run = jax.jit(lambda state, xs, ys: jax.lax.scan(step_fn, state, (xs, ys)))
        start = time.perf_counter()
        state, losses = run(state, xs, ys)
        jax.block_until_ready(losses)
        compile_s = time.perf_counter() - start
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            state, losses = run(state, xs, ys)
            jax.block_until_ready(losses)
            best = min(best, time.perf_counter() - start)
        return CHUNK / best, compile_s

    state = ([v.value for v in model.trainable_variables],
             [v.value for v in model.non_trainable_variables],
             [v.value for v in model.optimizer.variables])
    one, compile_s = timed(step, state)
    stacked = jax.tree_util.tree_map(lambda a: jnp.stack([a] * members), state)
    several, _ = timed(jax.vmap(step, in_axes=(0, None)), stacked)
    print(json.dumps({"steps_per_s": one, "members_steps_per_s": several,
                      "compile_s": round(compile_s, 2), "jax": jax.__version__,
                      "load": os.getloadavg()[0]}))


def mean_ratios(runs: list[dict[str, float]]) -> dict[str, float]:
    return {s: float(np.mean([r[s] for r in runs])) for s in runs[0]}


def tables_diff(a: Any, b: Any) -> float:
    """The largest difference of two walks' forecasts (pred_target), over every symbol."""
    return max(float(np.max(np.abs(a[s]["pred_target"].to_numpy()
                                   - b[s]["pred_target"].to_numpy()))) for s in a)


def compare_loops(walk: Walk, n_seeds: int) -> dict[str, Any]:
    """Each loop's walk-forward for ``n_seeds`` seeds, alternating which loop goes first."""
    times: dict[str, list[float]] = {"old": [], "new": []}
    ratios: dict[str, list[dict]] = {"old": [], "new": []}
    first_new = None
    for i in range(n_seeds):
        seed = walk.entry.seed + i
        for name in ("old", "new") if i % 2 == 0 else ("new", "old"):
            with loop(name):
                seconds, result = walk.run(seed)
            times[name].append(seconds)
            ratios[name].append(walk.mse_ratio(result))
            if name == "new" and first_new is None:
                first_new = result
            folds = len(result.folds)
            print(f"seed {seed} {name} loop: {seconds:.1f} s, {folds / seconds:.3f} folds/s, "
                  "mse_ratio " + ", ".join(f"{s} {r:.4f}" for s, r in ratios[name][-1].items())
                  + f"; {load()}", flush=True)
    return {"times": times, "ratios": ratios, "first_new": first_new, "folds": folds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per loop (default 3)")
    parser.add_argument("--members", type=int, default=5, help="ensemble size (default 5)")
    parser.add_argument("--folds", type=int, default=None, help="only the first N folds")
    parser.add_argument("--ceiling-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceiling_only:
        ceiling_run(args.members)
        return
    walk = Walk(args.folds)
    print(machine())
    print(f"btc.yaml walk-forward over the real candles, seeds {walk.entry.seed}.."
          f"{walk.entry.seed + args.seeds - 1}", flush=True)
    run = compare_loops(walk, args.seeds)
    times, folds, lone = run["times"], run["folds"], run["first_new"]
    steps = walk.steps(lone)
    fps = {name: folds * len(t) / sum(t) for name, t in times.items()}
    mse = {name: mean_ratios(r) for name, r in run["ratios"].items()}
    worse = {s: 100 * (mse["new"][s] / mse["old"][s] - 1) for s in mse["old"]}
    print(f"{folds} folds, {steps} training steps; old loop {fps['old']:.3f} folds/s, new "
          f"loop {fps['new']:.3f} folds/s: speedup {fps['new'] / fps['old']:.2f}x")
    print("mse_ratio over the seeds: " + "; ".join(
        f"{s} old {mse['old'][s]:.4f} new {mse['new'][s]:.4f} ({worse[s]:+.2f}%)"
        for s in mse["old"]), flush=True)

    # One seed again right before the ensemble, so both see the same machine load; each
    # compiles its own loop.
    one, _ = walk.run(walk.entry.seed)
    seconds, ens = walk.run(walk.entry.seed, seeds=args.members)
    ens_ratio = walk.mse_ratio(ens)
    member0 = tables_diff(next(iter(ens.by_name.values())).members[0],
                          next(iter(lone.by_name.values())).forecasts)
    print(f"{args.members} seeds as one stacked ensemble: {seconds:.1f} s vs one seed {one:.1f} s: "
          f"{seconds / one:.2f}x; ensemble mse_ratio " + ", ".join(
              f"{s} {r:.4f}" for s, r in ens_ratio.items()) + f"; {load()}")
    print(f"member 0 (seed {walk.entry.seed}) against that seed trained alone: largest "
          f"forecast difference {member0:.3g}", flush=True)

    ceiling = ceiling_steps_per_s(args.members)
    ceiling_fps = members_cost = None
    if ceiling is not None:
        ceiling_fps = folds / (steps / ceiling["steps_per_s"])
        members_cost = ceiling["steps_per_s"] / ceiling["members_steps_per_s"]
        print(f"ceiling (hand-written jax.jit + lax.scan, JAX {ceiling['jax']}, compile "
              f"{ceiling['compile_s']} s not counted, training only): "
              f"{ceiling['steps_per_s']:.0f} steps/s = {ceiling_fps:.3f} folds/s; new loop "
              f"{fps['new'] / ceiling_fps:.0%} of it; {args.members} models vmapped: "
              f"{ceiling['members_steps_per_s']:.0f} steps/s, {members_cost:.2f}x one "
              f"model's time; load average {ceiling['load']:.1f}")
    print(json.dumps({
        "folds": folds, "steps": steps, "seeds": args.seeds,
        "folds_per_s_old": round(fps["old"], 4), "folds_per_s_new": round(fps["new"], 4),
        "speedup": round(fps["new"] / fps["old"], 3),
        "seconds_old": [round(t, 2) for t in times["old"]],
        "seconds_new": [round(t, 2) for t in times["new"]],
        "mse_ratio_old": mse["old"], "mse_ratio_new": mse["new"],
        "mse_ratio_change_pct": {s: round(v, 3) for s, v in worse.items()},
        "members": args.members, "seconds_one_seed": round(one, 2),
        "seconds_ensemble": round(seconds, 2), "seeds5_cost": round(seconds / one, 3),
        "mse_ratio_ensemble": ens_ratio, "member0_vs_lone_max_diff": member0,
        "ceiling_folds_per_s": None if ceiling_fps is None else round(ceiling_fps, 4),
        "ceiling_steps_per_s": None if ceiling is None else round(ceiling["steps_per_s"], 1),
        "ceiling_compile_s": None if ceiling is None else ceiling["compile_s"],
        "ceiling_members_steps_per_s":
            None if ceiling is None else round(ceiling["members_steps_per_s"], 1),
        "ceiling_members_cost": None if members_cost is None else round(members_cost, 3),
        "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
