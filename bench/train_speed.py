"""Training speed: the older one-fit-per-epoch loop vs models.training, on btc.yaml's folds.

    python bench/train_speed.py [--seeds 3] [--members 5] [--folds N]

Drives configs/btc.yaml's walk-forward (69 folds of a 2 x 32 LSTM over the real daily BTC
and ETH candles: 20 epochs for the first fold, 5 per warm re-fit) fold by fold, exactly
as ``engine.walkforward.fit_fold`` does, once per seed with each loop:

- old: one Keras ``fit(epochs=1, shuffle=False)`` per epoch on the rows permuted by
  ``default_rng(seed)`` (the loop before models.training, kept here to compare);
- new: ``models.training.train``.

It prints folds per second of each, their ratio (``speedup``), and the forecast mse_ratio
(model MSE over persistence MSE on the forecast bars) of BTC/USDT and ETH/USDT averaged
over the seeds; then the walk-forward of a ``--members`` seed ensemble
(``models.ensemble``) against one seed with the new loop (``seeds5_cost``); then the
ceiling: the steps per second of a hand-written loop (one ``jax.jit`` of ``lax.scan``
over a chunk of steps of the same model through ``stateless_call``, compiled once and
timed without compilation) turned into folds per second for the same steps. The ceiling
runs in a subprocess with ``KERAS_BACKEND=jax`` and needs JAX (``pip install -e
".[jax]"``); without it, it is reported as null. Every timing line carries the load
average, since other work on the machine slows both loops.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from _common import REPO, csv_data_config, machine

CHUNK = 256  # steps per compiled call of the ceiling loop


def old_fit(model: Any, X: np.ndarray, y: np.ndarray, epochs: int, batch_size: int,
            seed: int) -> list[float]:
    """The older loop: one Keras fit per epoch over rows permuted by default_rng(seed)."""
    from models.lstm import _filtered_stderr

    rng = np.random.default_rng(seed)
    y = y.astype("float32")
    losses = []
    with _filtered_stderr():
        for _ in range(epochs):
            order = rng.permutation(len(X))
            history = model.fit(X[order], y[order], epochs=1, batch_size=batch_size,
                                shuffle=False, verbose=0)
            losses.append(float(history.history["loss"][-1]))
    return losses


class Walk:
    """btc.yaml's fold plan and windows over the real candles."""

    def __init__(self, limit: int | None) -> None:
        from engine.data import load_market_data
        from engine.walkforward import build_windows, first_train_end, plan_folds

        cfg = csv_data_config()
        self.frames = load_market_data(cfg.data, progress=False).frames
        self.model, self.wf = cfg.model, cfg.walkforward
        self.index = next(iter(self.frames.values())).index
        plans = plan_folds(len(self.index), first_train_end(self.index, self.wf,
                                                             self.model.window_len), self.wf)
        self.plans = plans[:limit]
        self.windows = build_windows(self.frames, self.model)

    def train_rows(self, plan) -> Any:
        w = self.windows
        return w.select((w.end >= plan.train_start + self.model.window_len - 1)
                        & (w.end <= plan.train_end - 2))

    def ahead(self, plan) -> Any:
        w = self.windows
        return w.select((w.end >= plan.forecast_start) & (w.end < plan.forecast_end))

    def epochs(self, plan) -> int:
        return self.wf.finetune_epochs if plan.index > 0 else self.model.epochs

    def steps(self) -> int:
        """Training steps of every fold together."""
        batch = self.model.batch_size
        return sum(self.epochs(p) * -(-len(self.train_rows(p)) // batch) for p in self.plans)

    def run(self, seed: int, fit: Callable, members: int = 1) -> tuple[float, dict]:
        """Seconds for the whole walk-forward (training and forecasting) and the outputs."""
        from models import ensemble, lstm, training

        cfg = self.model.model_copy(update={"seed": seed})
        n_features, n_out = self.windows.X.shape[2], len(self.frames)
        outputs, model = {}, None
        start = time.perf_counter()
        for plan in self.plans:
            fold_seed = seed + plan.index
            seeds = [fold_seed + 1000 * i for i in range(members)]
            training.seed_everything(fold_seed)
            if members == 1:
                model = model or lstm.build_model(cfg, n_features, n_out)
                training.seed_everything(fold_seed, model)
            else:
                model = model or ensemble.build(
                    lambda s: lstm.build_model(cfg, n_features, n_out), seeds)
                ensemble.reseed(model, seeds)
            rows = self.train_rows(plan)
            fit(model, rows.X, rows.y, self.epochs(plan), cfg.batch_size, fold_seed)
            ahead = self.ahead(plan)
            if members == 1:
                outputs[plan.index] = (ahead, lstm.predict(model, ahead.X))
            else:  # the ensemble's forecast is the members' mean; member 0 kept to compare
                each = ensemble.predict_members(model, ahead.X)
                outputs[plan.index] = (ahead, each.mean(axis=0), each[0])
        return time.perf_counter() - start, outputs

    def mse_ratio(self, outputs: dict) -> dict[str, float]:
        """Forecast MSE over persistence MSE per symbol (``engine.report``'s definition)."""
        from engine.report import forecast_metrics

        ends = np.concatenate([o[0].end for o in outputs.values()])
        preds = np.concatenate([o[1] for o in outputs.values()])
        base = np.concatenate([o[0].base for o in outputs.values()])
        inside = ends + 1 < len(self.index)  # the forecast past the data has no outcome
        ratios = {}
        for j, (symbol, frame) in enumerate(self.frames.items()):
            table = pd.DataFrame({
                "pred_target": preds[inside, j], "base_close": base[inside, j],
                "pred_close": base[inside, j] * (1 + preds[inside, j]),
                "target": self.index[ends[inside] + 1]}, index=self.index[ends[inside]])
            ratios[symbol] = forecast_metrics(table, frame["close"])["mse_ratio"]
        return ratios


def load() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def ceiling_steps_per_s() -> dict | None:
    """Steps per second of the hand-written JAX loop, from a subprocess."""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, __file__, "--ceiling-only"], env=env,
                          capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        print(f"ceiling: not measured (the JAX backend did not run: "
              f"{(done.stderr.strip().splitlines() or ['?'])[-1]})")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def ceiling_run() -> None:
    """(In the subprocess.) A jitted lax.scan over CHUNK steps of the btc.yaml model on
    random batches of the real shape: forward, MSE, gradients, Adam; nothing else."""
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

    run = jax.jit(lambda state, xs, ys: jax.lax.scan(step, state, (xs, ys)))
    state = ([v.value for v in model.trainable_variables],
             [v.value for v in model.non_trainable_variables],
             [v.value for v in model.optimizer.variables])
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
    print(json.dumps({"steps_per_s": CHUNK / best, "compile_s": round(compile_s, 2),
                      "jax": jax.__version__, "load": os.getloadavg()[0]}))


def mean_ratios(runs: list[dict[str, float]]) -> dict[str, float]:
    return {s: float(np.mean([r[s] for r in runs])) for s in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per loop (default 3)")
    parser.add_argument("--members", type=int, default=5, help="ensemble size (default 5)")
    parser.add_argument("--folds", type=int, default=None, help="only the first N folds")
    parser.add_argument("--ceiling-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceiling_only:
        ceiling_run()
        return
    from models import ensemble, training

    walk = Walk(args.folds)
    folds, steps = len(walk.plans), walk.steps()
    print(machine())
    print(f"btc.yaml walk-forward: {folds} folds, {steps} training steps "
          f"(batch {walk.model.batch_size}), seeds {walk.model.seed}.."
          f"{walk.model.seed + args.seeds - 1}")
    times: dict[str, list[float]] = {"old": [], "new": []}
    ratios: dict[str, list[dict]] = {"old": [], "new": []}
    lone: dict[str, Any] = {}
    for i in range(args.seeds):
        seed = walk.model.seed + i
        order = ("old", "new") if i % 2 == 0 else ("new", "old")  # neither always first
        for name in order:
            fit = old_fit if name == "old" else training.train
            seconds, outputs = walk.run(seed, fit)
            times[name].append(seconds)
            ratios[name].append(walk.mse_ratio(outputs))
            if name == "new" and i == 0:
                lone = outputs
            print(f"seed {seed} {name}: {seconds:.1f} s, {folds / seconds:.3f} folds/s, "
                  f"mse_ratio " + ", ".join(f"{s} {r:.4f}" for s, r in ratios[name][-1].items())
                  + f"; {load()}", flush=True)
    fps = {name: folds * len(t) / sum(t) for name, t in times.items()}
    mse = {name: mean_ratios(r) for name, r in ratios.items()}
    worse = {s: 100 * (mse["new"][s] / mse["old"][s] - 1) for s in mse["old"]}
    print(f"old loop {fps['old']:.3f} folds/s, new loop {fps['new']:.3f} folds/s: "
          f"speedup {fps['new'] / fps['old']:.2f}x")
    print("mse_ratio over the seeds: " + "; ".join(
        f"{s} old {mse['old'][s]:.4f} new {mse['new'][s]:.4f} ({worse[s]:+.2f}%)"
        for s in mse["old"]))

    seconds, outputs = walk.run(walk.model.seed, ensemble.train, members=args.members)
    one = float(np.mean(times["new"]))
    ens_ratio = walk.mse_ratio(outputs)
    same = max(float(np.max(np.abs(outputs[k][2] - lone[k][1]))) for k in outputs)
    print(f"{args.members} seeds as one ensemble: {seconds:.1f} s vs one seed {one:.1f} s: "
          f"{seconds / one:.2f}x; ensemble mse_ratio " + ", ".join(
              f"{s} {r:.4f}" for s, r in ens_ratio.items()) + f"; {load()}")
    print(f"member 0 (seed {walk.model.seed}) against that seed trained alone: largest "
          f"forecast difference {same:.3g}")

    ceiling = ceiling_steps_per_s()
    ceiling_fps = None
    if ceiling is not None:
        ceiling_fps = folds / (steps / ceiling["steps_per_s"])
        print(f"ceiling (hand-written jax.jit + lax.scan, JAX {ceiling['jax']}, compile "
              f"{ceiling['compile_s']} s not counted): {ceiling['steps_per_s']:.0f} steps/s = "
              f"{ceiling_fps:.3f} folds/s; new loop {fps['new'] / ceiling_fps:.0%} of it; "
              f"load average {ceiling['load']:.1f}")
    print(json.dumps({
        "folds": folds, "steps": steps, "seeds": args.seeds,
        "folds_per_s_old": round(fps["old"], 4), "folds_per_s_new": round(fps["new"], 4),
        "speedup": round(fps["new"] / fps["old"], 3),
        "seconds_old": [round(t, 2) for t in times["old"]],
        "seconds_new": [round(t, 2) for t in times["new"]],
        "mse_ratio_old": mse["old"], "mse_ratio_new": mse["new"],
        "mse_ratio_change_pct": {s: round(v, 3) for s, v in worse.items()},
        "members": args.members, "seconds_ensemble": round(seconds, 2),
        "seeds5_cost": round(seconds / one, 3), "mse_ratio_ensemble": ens_ratio,
        "member0_vs_lone_max_diff": same,
        "ceiling_folds_per_s": None if ceiling_fps is None else round(ceiling_fps, 4),
        "ceiling_steps_per_s": None if ceiling is None else round(ceiling["steps_per_s"], 1),
        "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
