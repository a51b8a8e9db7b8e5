"""The replay strategy: recorded targets at listed closes, unlisted bars keep the position."""

from __future__ import annotations

import pytest

from engine.config import BrokerConfig, validate_config
from engine.errors import ConfigError
from engine.simulation import simulate
from strategies.registry import check_config
from strategies.replay import Replay
from tests.conftest import make_ohlcv


def write(tmp_path, text: str):
    path = tmp_path / "targets.csv"
    path.write_text(text)
    return path


def test_listed_closes_decide_and_unlisted_bars_keep(tmp_path):
    frame = make_ohlcv(30, seed=3)
    t = frame.index
    path = write(tmp_path, f"time,target\n{t[2].isoformat()},1\n{t[9]:%Y-%m-%d},0.5\n"
                           f"{t[12].isoformat()},0.5\n{t[20].isoformat()},0\n")
    run = simulate({"BTC/USDT": frame}, Replay, {"path": str(path)}, BrokerConfig())
    fills = run.fills
    assert list(fills["decided_at"]) == [t[2], t[9], t[20]]  # t[12] repeats 0.5: kept
    assert list(fills["time"]) == [t[3], t[10], t[21]]  # each at the next open
    assert list(fills["side"]) == ["buy", "sell", "sell"]
    held = run.position["BTC/USDT"]
    assert held.loc[t[3]:t[9]].nunique() == 1 and held.loc[t[21]:].eq(0).all()
    weight = held[t[10]] * frame["close"][t[10]] / run.equity[t[10]]
    assert weight == pytest.approx(0.5, abs=0.01)  # resized down to half of equity


@pytest.mark.parametrize(("text", "message"), [
    ("when,target\n2020-01-02,1\n", "lacks the column(s) time"),
    ("time,target\nyesterday,1\n", "unreadable time or target"),
    ("time,target\n2020-01-02,inf\n", "non-finite target"),
    ("time,symbol,target\n2020-01-02,DOGE/USDT,1\n", "name DOGE/USDT, which this account"),
])
def test_bad_targets_file_is_one_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        simulate({"BTC/USDT": make_ohlcv(10)}, Replay, {"path": str(path)}, BrokerConfig())
    assert "\n" not in str(info.value)


def test_config_needs_a_path():
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.path = '' must name a CSV"):
        check_config(validate_config({"strategies": [{"name": "replay"}]}))
