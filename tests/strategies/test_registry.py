"""Strategies by name: discovery, parameter checks and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import strategies
from engine.config import load_config
from engine.errors import ConfigError, InvalidKey
from strategies import registry
from tests.conftest import config_dict, write_config


def test_known_strategies():
    assert {"buy_and_hold", "lstm_signal", "sma_cross"} <= set(registry.strategies())


def test_a_new_module_in_the_package_is_a_new_strategy(tmp_path):
    module = Path(strategies.__file__).parent / "zz_test_momentum.py"
    module.write_text(
        "from strategies.base import TargetStrategy\n\n\n"
        "class Momentum(TargetStrategy):\n"
        "    name = 'zz_momentum'\n"
        "    params = (('lookback', 5),)\n\n"
        "    def target(self):\n"
        "        return 1.0 if self.data.close[0] > self.data.close[-self.p.lookback] else 0.0\n")
    try:
        registry.strategies.cache_clear()
        config = write_config(tmp_path, config_dict(
            tmp_path, strategies=[{"name": "zz_momentum", "lookback": 3}]))
        assert load_config(config).strategies[0].params == {"lookback": 3}
    finally:
        module.unlink()
        registry.strategies.cache_clear()


@pytest.mark.parametrize(("spec", "message"), [
    ({"name": "sma_cros"}, "strategies[0].name = 'sma_cros' is not a strategy (did you mean "
                           "'sma_cross'? known: buy_and_hold, lstm_signal, replay, rl_ppo, "
                           "sma_cross)"),
    ({"name": "sma_cross", "fats": 3}, "strategies[0].fats = 3 is not a parameter of sma_cross "
                                       "(did you mean 'fast'? known: fast, slow, short, size)"),
    ({"name": "sma_cross", "fast": 2.5}, "strategies[0].fast = 2.5 must be a int"),
    ({"name": "sma_cross", "fast": 30, "slow": 10}, "strategies[0].slow = 10 must be greater "
                                                    "than fast (30)"),
    ({"name": "lstm_signal", "entry": 0.0, "exit": 0.01}, "strategies[0].exit = 0.01 must be <= "
                                                          "entry (0.0)"),
    ({"name": "lstm_signal", "size": 1.5}, "strategies[0].size = 1.5 is not in (0, 1]"),
    ({"name": "buy_and_hold", "size": 1}, "is not a parameter of buy_and_hold (known: weights)"),
    ({"name": "lstm_signal", "entry": float("inf")}, "strategies[0].entry = inf should be a "
                                                     "finite number"),
    ({"name": "lstm_signal", "size": float("nan")}, "strategies[0].size = nan should be a "
                                                    "finite number"),
    ({"name": "rl_ppo", "learning_rate": float("-inf")}, "strategies[0].learning_rate = -inf "
                                                         "should be a finite number"),
    ({"name": "buy_and_hold", "weights": {"BTC/USDT": float("nan")}},
     "strategies[0].weights[BTC/USDT] = nan should be a finite number"),
])
def test_bad_strategy_specs_are_one_line(tmp_path, spec, message):
    config = write_config(tmp_path, config_dict(tmp_path, strategies=[spec]))
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert message in str(info.value)


def test_duplicate_strategy_is_refused(tmp_path):
    config = write_config(tmp_path, config_dict(tmp_path, strategies=["buy_and_hold",
                                                                      {"name": "buy_and_hold"}]))
    with pytest.raises(ConfigError, match=r"strategies\[1\] = 'buy_and_hold' is listed twice"):
        load_config(config)


def test_int_parameters_are_accepted_for_floats():
    assert registry.resolve_params("lstm_signal", {"entry": 0, "exit": 0}) == {
        "entry": 0.0, "exit": 0.0}
    with pytest.raises(InvalidKey):
        registry.resolve_params("lstm_signal", {"short": "yes"})


def test_labels_tell_parameterised_runs_apart(tmp_path):
    config = write_config(tmp_path, config_dict(tmp_path, strategies=[
        {"name": "sma_cross", "fast": 10, "slow": 30}, {"name": "lstm_signal", "entry": 0.01},
        "buy_and_hold"]))
    labels = [registry.spec_label(s) for s in load_config(config).strategies]
    assert labels == ["sma_cross(fast=10,slow=30)", "lstm_signal(entry=0.01)", "buy_and_hold"]


def test_a_broken_strategy_module_is_one_named_error(tmp_path):
    module = Path(strategies.__file__).parent / "zz_test_broken.py"
    module.write_text("def broken(:\n")
    try:
        registry.strategies.cache_clear()
        with pytest.raises(ConfigError, match=r"zz_test_broken.py cannot be imported "
                                              r"\(SyntaxError"):
            load_config(write_config(tmp_path, config_dict(tmp_path)))
    finally:
        module.unlink()
        registry.strategies.cache_clear()
