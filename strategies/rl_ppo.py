"""A PPO agent (stable-baselines3) trained walk-forward on the RL environment."""

from __future__ import annotations

from typing import Any

from engine.errors import InvalidKey
from strategies.replay import Replay

ACTION_SPACES = ("long_flat", "short_flat_long", "continuous")
REWARDS = ("log_return", "differential_sharpe")


class RLPPO(Replay):
    """Trade what a PPO agent decides, trained fold by fold on the bars each fold may know.

    Before the backtest's event loop runs, the agent is trained walk-forward on the same
    folds as the LSTM (``engine.rl.agent``), one saved agent per fold beside the fold's
    ``.keras`` model, and acts through the test period in one episode of the RL
    environment. The backtest replays those decisions, so its equity is the episode's.
    Needs the ``rl`` extra. Runs in backtests only (not in paper trading).

    Params:
        total_timesteps: Steps the first fold's agent learns. Defaults to 20000.
        finetune_timesteps: Steps each later fold continues from the previous agent.
            Defaults to 2000.
        action_space: long_flat, short_flat_long or continuous. Defaults to long_flat.
        use_forecast: Observe the walk-forward LSTM forecast. Defaults to False.
        reward: log_return or differential_sharpe. Defaults to log_return.
        min_train_bars: Fewest training bars a fold needs to train; with fewer, the agent
            stays flat (no agent yet) or keeps the last one. Defaults to 60.
        units: Width of the policy and value networks' two hidden layers. Defaults to 32.
        learning_rate: PPO's step size. Defaults to 0.0003.
        n_steps: Steps collected per PPO update. Defaults to 512.
        batch_size: PPO's minibatch. Defaults to 64.
        seed: Seeds every fold's agent (seed + fold). Defaults to 0.
        forecaster: Whose forecast is observed with ``use_forecast``. Defaults to ""
            (``rl.forecaster``, else the config's first forecaster).
    """

    name = "rl_ppo"
    params = (("total_timesteps", 20_000), ("finetune_timesteps", 2_000),
              ("action_space", "long_flat"), ("use_forecast", False),
              ("reward", "log_return"), ("min_train_bars", 60), ("units", 32),
              ("learning_rate", 3e-4), ("n_steps", 512), ("batch_size", 64), ("seed", 0),
              ("forecaster", ""))

    def _load(self):
        from engine.errors import ConfigError

        raise ConfigError("rl_ppo runs in backtests only (python -m engine.backtest), where "
                          "its agents are trained walk-forward; paper-trade another strategy")

    @classmethod
    def check_params(cls, params: dict) -> None:
        if params.get("action_space", "long_flat") not in ACTION_SPACES:
            raise InvalidKey(("action_space",), params["action_space"],
                             f"is not one of {', '.join(ACTION_SPACES)}")
        if params.get("reward", "log_return") not in REWARDS:
            raise InvalidKey(("reward",), params["reward"], f"is not one of {', '.join(REWARDS)}")
        for key in ("total_timesteps", "finetune_timesteps", "units", "n_steps", "batch_size",
                    "min_train_bars"):
            if key in params and params[key] < (0 if key == "finetune_timesteps" else 1):
                raise InvalidKey((key,), params[key], "must be a positive number")
        if params.get("n_steps", 512) < 2:
            raise InvalidKey(("n_steps",), params["n_steps"], "must be >= 2")
        if not 0 < params.get("learning_rate", 3e-4) < 1:
            raise InvalidKey(("learning_rate",), params["learning_rate"], "is not in (0, 1)")

    @classmethod
    def reads_forecaster(cls, params: dict, config: Any) -> str | None:
        if not params.get("use_forecast", config.rl.use_forecast):
            return None
        return params.get("forecaster") or config.rl.forecaster or ""

    @classmethod
    def prepare(cls, params: dict, context: Any) -> dict:
        from engine.rl import rl_settings
        from engine.rl.agent import Account, PPOSettings, file_stem, train_and_act
        from engine.rl.env import env_data
        from engine.simulation import make_account
        from strategies.registry import user_params

        full = {**user_params(cls), **params}
        cfg, wf = context.config, context.walkforward
        rl = rl_settings(cfg, {k: full[k] for k in ("action_space", "use_forecast", "reward")})
        frames = context.market.frames
        observed = cls.reads_forecaster(full, cfg)
        forecaster = cfg.forecaster(observed or cfg.rl.forecaster)
        data = env_data(forecaster, frames, context.symbols,
                        wf.tables(observed) if observed is not None else None,
                        wf.first_forecast_bar)
        plans = wf.plans
        account = make_account(cfg.broker)
        ppo = PPOSettings(**{k: full[k] for k in PPOSettings.__dataclass_fields__})
        decisions = train_and_act(data, rl, Account(account.cash, account.costs,
                                                    account.leverage),
                                  plans, ppo, context.model_dir,
                                  file_stem(context.label, context.symbols), context.progress)
        return {**params, "decisions": decisions}
