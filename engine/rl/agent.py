"""A PPO agent trained walk-forward like the LSTM, acting in one continuous test episode.

For each fold of the config's walk-forward plan (``engine.folds.plan_folds``):

1. train on an environment over the bars the fold may know: from the fold's first bar with
   an observation (a complete window; with the forecast observed, a bar with an out-of-sample
   forecast, so an agent never learns from forecasts made in sample) to its last training
   bar ``train_end - 1``. The first agent trains ``total_timesteps``; later folds continue
   from the previous fold's weights for ``finetune_timesteps`` (like the LSTM's warm start);
2. save the agent beside the fold's ``.keras`` model;
3. act, deterministically, at the fold's forecast bars of one test episode that spans the
   whole test period on one account.

A fold with fewer than ``min_train_bars`` training bars trains nothing and stays flat. The
targets the episode decided are replayed by the backtest (the ``rl_ppo`` strategy, a
``strategies/replay.py`` replay), so the report's equity is the episode's, bar for bar.
``ppo_targets`` is that whole procedure for one ``rl_ppo`` entry of a config.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from engine.config import BrokerConfig, Config, RLConfig
from engine.extras import require
from engine.folds import FoldPlan
from engine.rl import rl_settings
from engine.rl.env import EnvData, TradingEnv, broker_env, env_data
from engine.walkforward import WalkForwardResult


@dataclass(frozen=True)
class PPOSettings:
    """The agent's knobs (rl_ppo's params)."""

    total_timesteps: int = 20_000
    finetune_timesteps: int = 2_000
    min_train_bars: int = 60
    seed: int = 0
    units: int = 32
    learning_rate: float = 3e-4
    n_steps: int = 512
    batch_size: int = 64




@contextmanager
def small_net_threads() -> Iterator[str]:
    """Train on the GPU when there is one; on a CPU use one thread, and yield the device.

    A policy of a few dozen units is too small to split across threads: on a busy 2-core
    CPU one thread trains PPO several times faster than torch's default pool.
    """
    import torch  # defers torch (rl extra)

    with warnings.catch_warnings():  # a CUDA-enabled build on a machine without a GPU
        warnings.simplefilter("ignore", UserWarning)
        device = "cuda" if torch.cuda.is_available() else "cpu"
    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)
    try:
        yield device
    finally:
        torch.set_num_threads(threads)


def ppo_targets(cfg: Config, params: Mapping[str, Any], frames: Mapping[str, pd.DataFrame],
                walkforward: WalkForwardResult, symbols: tuple[str, ...],
                model_dir: Path | None, label: str, progress: bool = False,
                observed: str | None = None) -> pd.DataFrame:
    """The targets an ``rl_ppo`` agent decides over the test period of one account.

    Args:
        cfg: The run's config (its broker, folds and ``rl`` section).
        params: The rl_ppo entry's parameters, every default filled in.
        frames: The run's aligned OHLCV frames.
        walkforward: The run's walk-forward (its fold plans, first forecast bar, and the
            observed forecaster's forecasts).
        symbols: The account's traded symbols.
        model_dir: Where each fold's agent is saved; None saves nothing.
        label: The strategy's display label (names the saved agents).
        progress: Show a progress bar over the timesteps.
        observed: The forecaster whose forecasts the agent observes (its name; "" for the
            only one), None when it observes none. The window is that forecaster's, or
            ``rl.forecaster``'s when none is observed.

    Returns:
        What ``strategies.rl_ppo.RLPPO`` replays as its ``decisions``.
    """
    rl = rl_settings(cfg, {k: params[k] for k in ("action_space", "use_forecast", "reward")})
    forecaster = cfg.forecaster(observed or cfg.rl.forecaster)
    data = env_data(forecaster, frames, symbols,
                    walkforward.tables(observed) if observed is not None else None,
                    walkforward.first_forecast_bar, cfg.data.timeframe)
    plans = walkforward.plans
    ppo = PPOSettings(**{f.name: params[f.name] for f in fields(PPOSettings)})
    return train_and_act(data, rl, cfg.broker, plans, ppo, model_dir, file_stem(label, symbols),
                         progress)


def train_and_act(data: EnvData, rl: RLConfig, broker: BrokerConfig, plans: list[FoldPlan],
                  ppo: PPOSettings, model_dir: Path | None, name: str,
                  progress: bool = False) -> pd.DataFrame:
    """Walk-forward PPO over ``plans``; returns the targets it decided in the test episode.

    Returns:
        Frame indexed by decision time (UTC) with one column per traded symbol.
    """
    require("rl", "the strategy rl_ppo")
    with small_net_threads() as device:
        return _walk(data, rl, broker, plans, ppo, model_dir, name, progress, device)


def _walk(data: EnvData, rl: RLConfig, broker: BrokerConfig, plans: list[FoldPlan],
          ppo: PPOSettings, model_dir: Path | None, name: str, progress: bool,
          device: str) -> pd.DataFrame:
    test = broker_env(data, rl, broker, plans[0].forecast_start, len(data.index) - 1)
    obs, _ = test.reset(seed=ppo.seed)
    rows: list[tuple[pd.Timestamp, dict[str, float]]] = []
    agent = None
    total = ppo.total_timesteps + ppo.finetune_timesteps * (len(plans) - 1)
    bar = tqdm(total=total, desc=f"{name} walk-forward", unit="step", disable=not progress)
    done = False
    for plan in plans:
        # 1-2. Train on the bars this fold may know (or keep the agent when too few).
        agent, steps = _fit_fold(agent, plan, data, rl, broker, ppo, model_dir, name, device)
        bar.update(steps)
        bar.set_postfix(fold=plan.index)
        # 3. Act at the fold's forecast bars of the one test episode.
        while not done and test.bar < plan.forecast_end:
            action = _act(agent, obs, test)
            obs, _, done, _, info = test.step(action)
            target = info["target"]
            rows.append((pd.Timestamp(info["decided_at"]),
                         target if isinstance(target, dict) else {data.symbols[0]: target}))
    bar.close()
    return pd.DataFrame([r[1] for r in rows], index=pd.DatetimeIndex([r[0] for r in rows],
                                                                      name="time"))


def _train_range(data: EnvData, rl: RLConfig, plan: FoldPlan) -> tuple[int, int]:
    """First and last bar (inclusive) of the fold's training episode."""
    first = plan.train_start + data.window_len - 1
    if rl.use_forecast:
        known = np.flatnonzero(~np.isnan(data.forecast).any(axis=1))
        first = max(first, int(known[0]) if len(known) else plan.train_end)
    return first, plan.train_end - 1


def _fit_fold(agent: Any, plan: FoldPlan, data: EnvData, rl: RLConfig, broker: BrokerConfig,
              ppo: PPOSettings, model_dir: Path | None, name: str,
              device: str) -> tuple[Any, int]:
    """The fold's agent (trained or continued) and the timesteps it learned."""
    from stable_baselines3 import PPO  # defers stable-baselines3 and torch (rl extra)

    first, last = _train_range(data, rl, plan)
    if last - first + 1 < max(ppo.min_train_bars, data.window_len, 2):
        return agent, 0  # too little known history: no agent yet, or keep the last one
    env = broker_env(data, rl, broker, first, last)
    seed = ppo.seed + plan.index
    if agent is None:
        agent = PPO("MlpPolicy", env, learning_rate=ppo.learning_rate,
                    n_steps=ppo.n_steps,
                    batch_size=ppo.batch_size, seed=seed, device=device, verbose=0,
                    policy_kwargs={"net_arch": [ppo.units, ppo.units]})
        steps = ppo.total_timesteps
    else:
        agent.set_env(env)
        agent.set_random_seed(seed)
        steps = ppo.finetune_timesteps
    env.reset(seed=seed)
    agent.learn(steps, reset_num_timesteps=False)
    if model_dir is not None:
        model_dir.mkdir(parents=True, exist_ok=True)
        agent.save(model_dir / f"{name}_fold_{plan.index:03d}.zip")
    return agent, steps


def _act(agent: Any, obs: np.ndarray, env: TradingEnv) -> Any:
    """The agent's deterministic action, or flat when no fold has trained one yet."""
    if agent is not None:
        action, _ = agent.predict(obs, deterministic=True)
        return action
    if env.settings.action_space == "continuous":
        return np.zeros(len(env.data.symbols), np.float32)
    flat = 0 if env.settings.action_space == "long_flat" else 1
    return flat if len(env.data.symbols) == 1 else np.full(len(env.data.symbols), flat)


def file_stem(label: str, symbols: tuple[str, ...]) -> str:
    """A short file-name-safe stem for an agent: its strategy name, a hash of its full
    label (parameters) when it has parameters, and its account's symbols."""
    name, _, params = label.partition("(")
    digest = f"_{hashlib.sha1(label.encode()).hexdigest()[:8]}" if params else ""
    account = "-".join(s.replace("/", "") for s in symbols)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{name}{digest}_{account}")
