"""The trading environment: checkers, seeds, no lookahead, bad input, and backtest parity."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("stable_baselines3")

import gymnasium  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402
from stable_baselines3.common.env_checker import check_env as sb3_check_env  # noqa: E402

from engine.config import validate_config  # noqa: E402
from engine.data import MarketData  # noqa: E402
from engine.errors import ConfigError  # noqa: E402
from engine.pipeline import run_strategies  # noqa: E402
from engine.rl import ENV_ID, make_env, write_targets  # noqa: E402
from engine.walkforward import run_walkforward  # noqa: E402
from tests.conftest import make_ohlcv  # noqa: E402

BARS = 260
TINY_MODEL = {"window_len": 5, "layers": 1, "units": 2, "epochs": 1, "batch_size": 64}


def raw_config(**sections) -> dict:
    raw = {"data": {"symbols": ["BTC/USDT", "ETH/USDT"], "start": "2020-01-01"},
           "model": TINY_MODEL, "walkforward": {"train_bars": 120, "retrain_every": 70,
                                                "finetune_epochs": 1},
           "backtest": {"symbols": ["BTC/USDT"]},
           "broker": {"commission": 0.001, "slippage": 0.0005}}
    raw.update(sections)
    return raw


@pytest.fixture(scope="module")
def frames():
    return {"BTC/USDT": make_ohlcv(BARS, seed=1, price=10_000.0, vol=0.04),
            "ETH/USDT": make_ohlcv(BARS, seed=2, price=200.0, vol=0.05)}


@pytest.fixture(scope="module")
def cfg():
    return validate_config(raw_config())


@pytest.fixture(scope="module")
def walkforward(frames, cfg):
    return run_walkforward(frames, cfg.model, cfg.walkforward, None, progress=False)


def play(env, seed: int, actions_seed: int = 7):
    """One episode of seeded random actions: observations, rewards and infos."""
    env.action_space.seed(actions_seed)
    obs, info = env.reset(seed=seed)
    observations, rewards, infos = [obs], [], [info]
    done = False
    while not done:
        obs, reward, done, truncated, info = env.step(env.action_space.sample())
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
    return observations, rewards, infos


@pytest.mark.parametrize("space", ["long_flat", "short_flat_long", "continuous"])
def test_passes_gymnasium_and_sb3_checkers(frames, cfg, space):
    check_env(make_env(cfg, market=frames, action_space=space), skip_render_check=True)
    sb3_check_env(make_env(cfg, market=frames, action_space=space), warn=False)


def test_portfolio_mode_has_a_weight_per_symbol(frames):
    cfg = validate_config(raw_config(backtest={"symbols": ["BTC/USDT", "ETH/USDT"],
                                               "portfolio": True}))
    env = make_env(cfg, market=frames, action_space="continuous")
    check_env(env, skip_render_check=True)
    assert env.action_space.shape == (2,)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([0.9, -0.6], dtype=np.float32))
    # |0.9| + |0.6| > leverage 1: scaled down together, signs kept.
    assert info["target"] == pytest.approx({"BTC/USDT": 0.6, "ETH/USDT": -0.4})
    assert env.unwrapped.account.size("BTC/USDT") > 0 > env.unwrapped.account.size("ETH/USDT")


def test_gymnasium_make_and_info(frames, cfg):
    env = gymnasium.make(ENV_ID, config=cfg, market=frames)
    obs, info = env.reset(seed=0)
    first = frames["BTC/USDT"].index[cfg.walkforward.train_bars - 1]
    assert info == {"time": first.isoformat(), "equity": cfg.broker.cash}
    assert obs.shape == env.observation_space.shape
    _, reward, _, _, info = env.step(1)  # long at the first close, filled at the next open
    bar = frames["BTC/USDT"].iloc[cfg.walkforward.train_bars]
    fill = bar["open"] * (1 + cfg.broker.slippage)
    units = cfg.broker.cash / (bar["open"] * 1.0005 * 1.001) * (1 - 1e-9)
    expected = cfg.broker.cash - units * fill * 1.001 + units * bar["close"]
    assert info["time"] == bar.name.isoformat() and info["decided_at"] == first.isoformat()
    assert info["target"] == 1.0
    assert info["equity"] == pytest.approx(expected, rel=1e-12)
    assert reward == pytest.approx(math.log(expected / cfg.broker.cash), rel=1e-9)


def test_reset_with_a_seed_reproduces_the_episode(frames, cfg):
    env = make_env(cfg, market=frames, action_space="continuous", reward="differential_sharpe")
    first = play(env, seed=3)
    again = play(env, seed=3)
    other = play(make_env(cfg, market=frames, action_space="continuous",
                          reward="differential_sharpe"), seed=3)
    for run in (again, other):
        assert all(np.array_equal(a, b) for a, b in zip(first[0], run[0], strict=True))
        assert first[1] == run[1] and first[2] == run[2]
    assert play(env, seed=3, actions_seed=8)[1] != first[1]  # the actions do matter


def test_no_lookahead_observation_ignores_later_bars(frames, cfg, walkforward):
    full = make_env(cfg, market=frames, walkforward=walkforward, use_forecast=True,
                    action_space="short_flat_long")
    observations, _, infos = play(full, seed=0)
    step = 40
    cut_time = infos[step]["time"]
    cut = {s: f.loc[:cut_time] for s, f in frames.items()}
    assert len(cut["BTC/USDT"]) < BARS
    short = make_env(cfg, market=cut, walkforward=walkforward, use_forecast=True,
                     action_space="short_flat_long")
    cut_observations, _, cut_infos = play(short, seed=0)
    assert len(cut_observations) == step + 1
    for a, b in zip(observations[:step + 1], cut_observations, strict=True):
        np.testing.assert_array_equal(a, b)
    assert cut_infos == infos[:step + 1]


def test_replay_of_random_actions_matches_the_backtest(tmp_path, frames, walkforward):
    for space, raw in (("short_flat_long", raw_config()),
                       ("continuous", raw_config(backtest={"symbols": ["BTC/USDT", "ETH/USDT"],
                                                           "portfolio": True}))):
        cfg = validate_config(raw)
        env = make_env(cfg, market=frames, walkforward=walkforward, use_forecast=True,
                       action_space=space)
        _, _, infos = play(env, seed=0)
        path = write_targets(infos, tmp_path / f"{space}.csv")
        replayed = validate_config({**raw, "strategies": [{"name": "replay",
                                                           "path": str(path)}]})
        market = MarketData(frames, {})
        [run] = run_strategies(replayed, market, walkforward)
        env_equity = np.array([i["equity"] for i in infos])
        assert [i["time"] for i in infos] == [t.isoformat() for t in run.equity.index]
        np.testing.assert_allclose(run.equity.to_numpy(), env_equity, rtol=1e-9, atol=0)
        assert len(run.fills) > 10  # the actions did trade


def test_bad_input_is_one_line(frames, cfg):
    no_model = {k: v for k, v in raw_config().items() if k != "model"}
    cases = [
        (lambda: make_env(cfg, market=frames, action_space="long_short"),
         r"rl\.action_space = 'long_short' is not one of"),
        (lambda: make_env(cfg, "2020-03-01", "2020-03-03", market=frames),
         "holds 3 bars with a complete window, fewer than model.window_len = 5"),
        (lambda: make_env(validate_config(no_model), market=frames, use_forecast=True),
         "needs a model: section"),
        (lambda: make_env(cfg, "not a date", market=frames), "is not a date"),
    ]
    for build, message in cases:
        with pytest.raises(ConfigError, match=message) as info:
            build()
        assert "\n" not in str(info.value)


PORTFOLIO = {"symbols": ["BTC/USDT", "ETH/USDT"], "portfolio": True}


@pytest.mark.parametrize(("space", "portfolio", "action", "shown", "problem"), [
    ("long_flat", False, 2, "2", "a side the space does not have"),
    ("long_flat", False, -1, "-1", "a side the space does not have"),
    ("long_flat", False, np.array([1, 0]), "[1, 0]", "shape (2,), expected (1,) or a scalar"),
    ("long_flat", False, float("nan"), "nan", "not finite"),
    ("long_flat", False, 0.5, "0.5", "not an integer"),
    ("long_flat", False, "1", "'1'", "not a number"),
    ("long_flat", False, None, "None", "not a number"),
    ("short_flat_long", False, 3, "3", "a side the space does not have"),
    ("continuous", False, np.array([1.5], np.float32), "[1.5]", "an exposure outside [-1, 1]"),
    ("continuous", False, np.array([-2.0]), "[-2.]", "an exposure outside [-1, 1]"),
    ("continuous", False, np.array([np.inf], np.float32), "[inf]", "not finite"),
    ("continuous", True, np.array([0.5], np.float32), "[0.5]", "shape (1,), expected (2,)"),
    ("short_flat_long", True, np.array([[1, 2]]), "[[1, 2]]", "shape (1, 2), expected (2,)"),
    ("short_flat_long", True, np.array([0, 3]), "[0, 3]", "a side the space does not have"),
])
def test_an_action_outside_the_space_is_a_value_error(frames, space, portfolio, action, shown,
                                                      problem):
    raw = raw_config(backtest=PORTFOLIO) if portfolio else raw_config()
    env = make_env(validate_config(raw), market=frames, action_space=space, seed=0)
    before = (env.bar, env.equity(), env.last_target)
    with pytest.raises(ValueError) as info:
        env.step(action)
    message = str(info.value)
    assert message.startswith(f"action {shown} is not in the action space "
                              f"{env.action_space} ({problem})"), message
    symbols = "BTC/USDT, ETH/USDT" if portfolio else "BTC/USDT"
    assert f"rl.action_space = {space} (" in message and f"for {symbols}, broker.leverage" \
        in message and "\n" not in message
    # Nothing happened: the episode goes on from the same bar with a good action.
    assert (env.bar, env.equity(), env.last_target) == before
    env.step(env.action_space.sample())
    assert env.bar == before[0] + 1


def test_continuous_actions_inside_the_space_are_traded_as_given(frames, cfg):
    env = make_env(cfg, market=frames, action_space="continuous", seed=0)
    for action in (np.array([1.0], np.float32), np.array([-1.0]), np.array([0.25]), -0.5):
        _, _, _, _, info = env.step(action)
        assert info["target"] == float(np.asarray(action).reshape(-1)[0])


def test_an_end_after_the_data_is_the_last_bar_with_a_warning(frames, cfg, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="engine.rl.env"):
        by_bar = make_env(cfg, end=BARS + 50, market=frames)
        by_date = make_env(cfg, end="2031-01-01", market=frames)
    last = frames["BTC/USDT"].index[-1]
    assert caplog.text.count(f"is after the data's last bar ({last.isoformat()}); the "
                             "episode ends there") == 2
    for env in (by_bar, by_date):
        assert env.end == BARS - 1
        _, _, infos = play(env, seed=0)  # steps to the very last bar, no IndexError
        assert infos[-1]["time"] == last.isoformat()
    caplog.clear()
    make_env(cfg, end=BARS - 1, market=frames)
    make_env(cfg, end=f"{last:%Y-%m-%d}", market=frames)
    assert "after the data" not in caplog.text
