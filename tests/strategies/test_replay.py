"""The replay strategy: recorded targets at listed closes, unlisted bars keep the position."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.backtest import main as backtest_main
from engine.cli import run_cli
from engine.config import BrokerConfig, validate_config
from engine.errors import ConfigError
from engine.simulation import simulate
from strategies.replay import Replay, read_targets
from tests.conftest import config_dict, make_ohlcv, write_config


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
        validate_config({"strategies": [{"name": "replay"}]})


def test_one_time_with_two_targets_is_one_line(tmp_path):
    t = make_ohlcv(30, seed=3).index
    cases = [
        (f"time,target\n{t[2].isoformat()},1\n{t[3].isoformat()},0\n{t[2]:%Y-%m-%d},0.5\n",
         f"lines 2 and 4 give two targets at {t[2].isoformat()} (1 and 0.5); keep one"),
        (f"time,symbol,target\n{t[2].isoformat()},BTC/USDT,1\n{t[2].isoformat()},ETH/USDT,0\n"
         f"{t[2].isoformat()},ETH/USDT,-1\n",
         f"lines 3 and 4 give two targets for ETH/USDT at {t[2].isoformat()} (0 and -1)"),
    ]
    for text, message in cases:
        path = write(tmp_path, text)
        with pytest.raises(ConfigError) as info:
            read_targets(path)
        assert message in str(info.value) and str(info.value).startswith(f"replay: {path} ")
    # The same target twice is no conflict.
    path = write(tmp_path, f"time,target\n{t[2].isoformat()},1\n{t[2]:%Y-%m-%d},1\n")
    assert read_targets(path)["target"].tolist() == [1.0]


def test_a_backtest_refuses_targets_at_times_that_are_not_bars(tmp_path, capsys):
    frames = {"BTC/USDT": make_ohlcv(200, seed=1, price=10_000.0),
              "ETH/USDT": make_ohlcv(200, seed=2, price=200.0)}
    t = frames["BTC/USDT"].index
    csv = {}
    for symbol, frame in frames.items():
        csv[symbol] = str(tmp_path / f"{symbol.replace('/', '-')}.csv")
        frame.rename_axis("timestamp").reset_index().to_csv(csv[symbol], index=False)
    cases = {
        # Hourly stamps on daily bars (a time zone slip, say): no target would ever trade.
        "noon.csv": (f"time,target\n{t[150].isoformat()},1\n{t[160] + pd.Timedelta('12h')}"
                     ",0\n", 3, t[160] + pd.Timedelta("12h")),
        # A file recorded on other dates.
        "later.csv": ("time,target\n2031-01-01T00:00:00+00:00,1\n", 2,
                      pd.Timestamp("2031-01-01", tz="UTC")),
    }
    for name, (text, line, when) in cases.items():
        path = write(tmp_path, text)
        path = path.rename(tmp_path / name)
        raw = config_dict(tmp_path, data={"csv": csv}, model={
            "window_len": 3, "layers": 1, "units": 2, "epochs": 1},
            walkforward={"train_bars": 120, "retrain_every": 60},
            strategies=[{"name": "replay", "path": str(path)}])
        config = write_config(tmp_path, raw)
        assert run_cli(backtest_main, [str(config), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err == (f"error: replay: {path} line {line}: {when.isoformat()} is not the time "
                       f"of a bar of the data (200 bars, {t[0].isoformat()} .. "
                       f"{t[-1].isoformat()}); list the times of the bars whose close decides "
                       "each target\n")
