"""Paper trading against the loopback exchange with a controllable clock."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.config import validate_config
from engine.errors import StateError, TemporaryExchangeError
from engine.paper.__main__ import status_text
from engine.paper.state import PaperState
from engine.paper.trader import PaperTrader
from engine.simulation import simulate
from engine.walkforward import run_walkforward
from strategies.lstm_signal import LSTMSignal
from strategies.registry import get_strategy
from tests.conftest import config_dict, make_ohlcv, write_config
from tests.loopback import LoopbackExchange

REPO = Path(__file__).resolve().parents[2]
DAY = 86_400_000
SIZES = {"model": {"window_len": 5, "layers": 1, "units": 4, "epochs": 2, "dropout": 0.2},
         "walkforward": {"train_bars": 200, "retrain_every": 15, "finetune_epochs": 1},
         "strategies": [{"name": "lstm_signal", "entry": 0.002}, "buy_and_hold"]}


@pytest.fixture
def candles():
    """Prices with 8 decimals, as the exchange (and so the paper trader) quotes them."""
    return {"BTC/USDT": make_ohlcv(280, seed=1, price=10_000.0).round(8),
            "ETH/USDT": make_ohlcv(280, seed=2, price=200.0).round(8)}


def ms(stamp: pd.Timestamp) -> int:
    return int(stamp.value // 1_000_000)


def closed_through(exchange: LoopbackExchange, stamp: pd.Timestamp) -> None:
    """Set the loopback clock so that the candle opening at ``stamp`` has just closed."""
    exchange.now_ms = ms(stamp) + DAY + 1


def make_trader(tmp_path, exchange, state_name="state.sqlite", **overrides):
    raw = config_dict(tmp_path, exchange, **{**SIZES, **overrides})
    cfg = validate_config(raw)
    state = PaperState.open(tmp_path / state_name)
    return PaperTrader(cfg, state, now_ms=lambda: exchange.now_ms, sleep=lambda s: None), state


def test_candles_are_processed_in_order_with_next_open_fills(tmp_path, candles):
    index = candles["BTC/USDT"].index
    with LoopbackExchange(candles, max_limit=100) as ex:
        closed_through(ex, index[239])
        trader, state = make_trader(tmp_path, ex)
        assert trader.run_once() == 1  # a new state starts at the last closed candle
        assert state.meta()["start"] == index[239].isoformat()
        closed_through(ex, index[259])
        assert trader.run_once() == 20
        assert trader.run_once() == 0  # nothing new: nothing processed twice
        processed = state.table("candles")
        assert processed["time"].tolist()[::2] == [t.isoformat() for t in index[239:260]]
        fills = state.table("fills")
        assert len(fills) > 0
        for fill in fills.itertuples():
            bar = candles[fill.symbol].loc[pd.Timestamp(fill.time)]
            decided = pd.Timestamp(fill.decided_at)
            assert pd.Timestamp(fill.time) - decided == pd.Timedelta("1D")  # the next candle
            expected = min(bar["open"] * 1.0005, bar["high"]) if fill.side == "buy" \
                else max(bar["open"] * 0.9995, bar["low"])
            assert fill.price == pytest.approx(expected)
            assert fill.commission == pytest.approx(0.001 * fill.value)


def test_paper_trades_equal_the_backtest_over_the_same_bars(tmp_path, candles):
    index = candles["BTC/USDT"].index
    with LoopbackExchange(candles, max_limit=100) as ex:
        closed_through(ex, index[229])
        trader, state = make_trader(tmp_path, ex)
        trader.run_once()
        for last in (233, 250, 251, 279):  # catch up in uneven steps
            closed_through(ex, index[last])
            trader.run_once()
        paper_fills, paper_candles = state.table("fills"), state.table("candles")
    cfg = trader.cfg
    wf = run_walkforward(candles, cfg.model, cfg.walkforward, None, progress=False)
    for symbol in ("BTC/USDT", "ETH/USDT"):
        run = simulate({symbol: candles[symbol]}, LSTMSignal, {"entry": 0.002}, cfg.broker,
                       trade_start=index[229], forecasts={symbol: wf.forecasts[symbol]})
        mine = paper_fills[paper_fills["symbol"] == symbol]
        assert len(run.fills) == len(mine) > 3
        assert [t.isoformat() for t in run.fill_table()["time"]] == mine["time"].tolist()
        assert run.fill_table()["side"].tolist() == mine["side"].tolist()
        np.testing.assert_allclose(run.fill_table()["price"], mine["price"], rtol=1e-12)
        np.testing.assert_allclose(run.fill_table()["size"], mine["size"], rtol=1e-9)
        equity = paper_candles[paper_candles["symbol"] == symbol]["equity"].to_numpy()
        np.testing.assert_allclose(run.equity.to_numpy(), equity, rtol=1e-9)


@pytest.mark.parametrize("spec", [{"name": "sma_cross", "fast": 2, "slow": 6},
                                  {"name": "lstm_signal", "entry": 0.002}])
def test_portfolio_paper_trades_equal_the_backtest(tmp_path, candles, spec):
    """One shared account; the strategy replays only its warm-up bars at each candle, and
    still decides exactly as the backtest's full replay does."""
    index = candles["BTC/USDT"].index
    with LoopbackExchange(candles, max_limit=100) as ex:
        closed_through(ex, index[229])
        trader, state = make_trader(tmp_path, ex, strategies=[spec],
                                    backtest={"portfolio": True})
        trader.run_once()
        for last in (240, 241, 279):
            closed_through(ex, index[last])
            trader.run_once()
        paper_fills, paper_candles = state.table("fills"), state.table("candles")
        accounts = state.accounts()
    assert list(accounts) == ["portfolio"] and set(paper_candles["account"]) == {"portfolio"}
    cfg = trader.cfg
    wf = run_walkforward(candles, cfg.model, cfg.walkforward, None, progress=False)
    cls = get_strategy(spec["name"])
    params = {k: v for k, v in spec.items() if k != "name"}
    run = simulate(candles, cls, params, cfg.broker, trade_start=index[229],
                   forecasts=wf.forecasts)
    assert len(run.fills) == len(paper_fills) > 3
    assert [t.isoformat() for t in run.fill_table()["time"]] == paper_fills["time"].tolist()
    assert run.fill_table()["symbol"].tolist() == paper_fills["symbol"].tolist()
    np.testing.assert_allclose(run.fill_table()["size"], paper_fills["size"], rtol=1e-9)
    equity = paper_candles.groupby("time", sort=False)["equity"].first().to_numpy()
    np.testing.assert_allclose(run.equity.to_numpy(), equity, rtol=1e-9)


def test_paper_pays_the_backtests_borrow_interest_on_shorts(tmp_path, candles):
    """With broker.borrow_rate the paper account charges each candle's interest at its
    close, in the state, as the backtest does: same equity, same interest per symbol."""
    index = candles["BTC/USDT"].index
    spec = {"name": "sma_cross", "fast": 2, "slow": 6, "short": True}
    broker = {"borrow_rate": 0.5}
    with LoopbackExchange(candles, max_limit=100) as ex:
        closed_through(ex, index[229])
        trader, state = make_trader(tmp_path, ex, strategies=[spec], broker=broker)
        trader.run_once()
        for last in (240, 241, 279):
            closed_through(ex, index[last])
            trader.run_once()
        paper_candles, accounts = state.table("candles"), state.accounts()
        text, _ = status_text(state)
    cfg = trader.cfg
    params = {k: v for k, v in spec.items() if k != "name"}
    for symbol in ("BTC/USDT", "ETH/USDT"):
        run = simulate({symbol: candles[symbol]}, get_strategy("sma_cross"), params,
                       cfg.broker, trade_start=index[229], timeframe=cfg.data.timeframe)
        equity = paper_candles[paper_candles["symbol"] == symbol]["equity"].to_numpy()
        np.testing.assert_allclose(run.equity.to_numpy(), equity, rtol=1e-9)
        assert run.borrow > 0 and (run.position[symbol] < 0).any()
        assert accounts[symbol]["borrow"] == pytest.approx(run.borrow, rel=1e-9)
        assert accounts[symbol]["borrow_by_symbol"][symbol] == pytest.approx(
            run.contributions[symbol]["borrow"], rel=1e-9)
    assert "borrow_paid" in text


def test_state_made_with_another_config_is_refused(tmp_path, candles):
    with LoopbackExchange(candles) as ex:
        closed_through(ex, candles["BTC/USDT"].index[239])
        trader, state = make_trader(tmp_path, ex)
        trader.run_once()
        state.close()
        with pytest.raises(StateError, match="was made with another config"):
            make_trader(tmp_path, ex, strategies=[{"name": "lstm_signal", "entry": 0.01}])


def test_not_a_state_file(tmp_path):
    bad = tmp_path / "state.sqlite"
    bad.write_text("hello, I am not a database" * 100)
    with pytest.raises(StateError, match="not a paper-trading state file"):
        PaperState.open(bad)


def test_network_outage_then_missed_candles_in_order(tmp_path, candles):
    index = candles["BTC/USDT"].index
    with LoopbackExchange(candles, max_limit=100) as ex:
        closed_through(ex, index[239])
        trader, state = make_trader(tmp_path, ex, data={"retries": 2})
        trader.run_once()
        before = state.meta()["last_processed"]
        closed_through(ex, index[245])
        ex.inject("503", times=3)  # longer than the retries: this poll fails
        with pytest.raises(TemporaryExchangeError, match="still failing after 3 attempts"):
            trader.run_once()
        assert state.meta()["last_processed"] == before  # nothing half-applied
        ex.inject("429", times=2)  # shorter than the retries: recovered within the call
        closed_through(ex, index[250])
        assert trader.run_once() == 11
        times = state.table("candles")["time"].tolist()[::2]
        assert times == [t.isoformat() for t in index[239:251]]


def test_run_forever_keeps_polling_through_failures(tmp_path, candles, caplog):
    index = candles["BTC/USDT"].index
    with LoopbackExchange(candles, max_limit=100) as ex:
        closed_through(ex, index[239])
        trader, state = make_trader(tmp_path, ex, data={"retries": 0})
        trader.run_once()
        waits = []

        def sleep(seconds):  # the clock moves on while the trader waits between polls
            waits.append(seconds)
            closed_through(ex, index[250])

        trader.sleep = sleep
        closed_through(ex, index[245])
        ex.inject("503", times=1)  # the first poll fails (no retries configured)
        with caplog.at_level("WARNING"):
            trader.run_forever(max_polls=3)
        assert "still failing after 1 attempts" in caplog.text and "trying again" in caplog.text
        assert state.meta()["last_processed"] == index[250].isoformat()
        assert waits == [30.0] * 3


def test_a_new_state_is_written_after_its_first_candle(tmp_path, candles, caplog):
    index = candles["BTC/USDT"].index
    path = tmp_path / "new" / "state.sqlite"
    with LoopbackExchange(candles, max_limit=100) as ex:
        closed_through(ex, index[239])
        cfg = validate_config(config_dict(tmp_path, ex, **{**SIZES, "data": {"retries": 0}}))
        state = PaperState.open(path)
        seen = []

        def sleep(seconds):  # what the folder holds while the trader waits between polls
            seen.append(sorted(p.name for p in path.parent.iterdir()))

        trader = PaperTrader(cfg, state, now_ms=lambda: ex.now_ms, sleep=sleep)
        ex.inject("503", times=2)  # the first two polls cannot reach the exchange
        with caplog.at_level("WARNING"):
            trader.run_forever(max_polls=3)
        state.close()
    assert seen[:2] == [["state.sqlite.lock"]] * 2  # no state file before the first candle
    assert "state.sqlite" in seen[2] and PaperState.open(path).meta()["last_processed"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2
    assert "trying again every 30s until it answers; Ctrl-C" in warnings[0]
    assert "paper trading needs the exchange's live candles" in warnings[0]
    assert "read candles from files" not in warnings[0]
    assert warnings[1] == "the exchange is still unreachable (2 tries); next try in 30s; " \
                          "Ctrl-C to stop"


def test_unreachable_exchange_leaves_nothing_behind(tmp_path, candles):
    with LoopbackExchange(candles) as ex:
        url = ex.url
    raw = config_dict(tmp_path, **SIZES)  # the loopback has stopped: nothing answers
    raw["data"].update(api_url=url, retries=0)
    config = write_config(tmp_path, raw)
    state = tmp_path / "paper" / "deeper" / "state.sqlite"
    code, _, err = finish(cli("run", config, "--once", "--state", state, "--no-progress"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "check the network or data.api_url: paper trading needs the exchange's live " \
           "candles (data.csv is for backtests)" in err
    assert not (tmp_path / "paper").exists()


def test_exchange_gap_is_reported(tmp_path, candles, caplog):
    index = candles["BTC/USDT"].index
    holed = {s: f.drop(index[245]) for s, f in candles.items()}
    with LoopbackExchange(holed, max_limit=100) as ex:
        closed_through(ex, index[239])
        trader, state = make_trader(tmp_path, ex)
        trader.run_once()
        closed_through(ex, index[250])
        with caplog.at_level("WARNING"):
            trader.run_once()
    assert f"the exchange has no candle at {index[245]}" in caplog.text
    assert index[245].isoformat() in state.table("candles")["time"].tolist()


def test_ticker_fills_happen_at_once(tmp_path, candles):
    index = candles["BTC/USDT"].index
    with LoopbackExchange(candles, max_limit=100) as ex:
        closed_through(ex, index[239])
        trader, state = make_trader(tmp_path, ex, paper={"fill": "ticker"},
                                    strategies=["buy_and_hold"])
        trader.run_once()
        fills = state.table("fills")
        assert len(fills) == 2 and set(fills["decided_at"]) == {index[239].isoformat()}
        assert fills["time"].tolist() == [index[239].isoformat()] * 2
        # The loopback's ticker is the last served close (candle 240 has just opened).
        assert fills["price"].iloc[0] == pytest.approx(candles["BTC/USDT"]["close"].iloc[240]
                                                       * 1.0005)
        assert state.open_orders() == []


def test_status_reports_pnl_against_buy_and_hold(tmp_path, candles):
    index = candles["BTC/USDT"].index
    with LoopbackExchange(candles, max_limit=100) as ex:
        closed_through(ex, index[239])
        trader, state = make_trader(tmp_path, ex, strategies=["buy_and_hold"])
        trader.run_once()
        closed_through(ex, index[260])
        trader.run_once()
        text, curves = status_text(state)
    # Paper buy-and-hold and the status' buy-and-hold benchmark are the same thing.
    for symbol in ("BTC/USDT", "ETH/USDT"):
        paper, hold = curves[symbol].values()
        np.testing.assert_allclose(paper.to_numpy(), hold.to_numpy(), rtol=1e-6)
    assert "Total equity" in text and "buy-and-hold" in text and "Recent fills" in text


# --- the command line: crash safety and secrets -------------------------------------------

def cli(*args, env=None, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "engine.paper", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, **kwargs)


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def processed_count(state: Path) -> int:
    try:
        with sqlite3.connect(state, timeout=5) as conn:
            return conn.execute("SELECT COUNT(DISTINCT time) FROM candles").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_sigkill_mid_run_then_restart_equals_an_uninterrupted_run(tmp_path, candles):
    index = candles["BTC/USDT"].index
    sizes = {**SIZES, "walkforward": {"train_bars": 200, "retrain_every": 10,
                                      "finetune_epochs": 1}}
    with LoopbackExchange(candles, max_limit=100) as ex:
        config = write_config(tmp_path, config_dict(tmp_path, ex, **sizes))
        ex.now_ms = ms(index[219]) + 1000  # candle 219 is the last served (closed to the CLI)
        for name in ("reference", "killed"):
            assert finish(cli("run", config, "--state", tmp_path / name / "s.sqlite",
                              "--once", "--no-progress"))[0] == 0
        ex.now_ms = ms(index[279]) + 1000
        assert finish(cli("run", config, "--state", tmp_path / "reference" / "s.sqlite",
                          "--once", "--no-progress"))[0] == 0
        killed = tmp_path / "killed" / "s.sqlite"
        proc = cli("run", config, "--state", killed, "--once", "--no-progress")
        deadline = time.time() + 240
        while processed_count(killed) < 1 + 5 and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = processed_count(killed)
        assert 6 <= done < 61, "the kill should land mid-run"
        code, out, err = finish(cli("run", config, "--state", killed, "--once", "--no-progress"))
        assert code == 0, err
        assert f"processed {61 - done} candle(s)" in out
    ref, got = PaperState.open(tmp_path / "reference" / "s.sqlite"), PaperState.open(killed)
    for table in ("fills", "trades", "candles", "forecasts"):
        a, b = ref.table(table).drop(columns=["id"], errors="ignore"), \
            got.table(table).drop(columns=["id"], errors="ignore")
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)
    assert ref.accounts() == got.accounts() and ref.open_orders() == got.open_orders()


def test_sandbox_orders_use_keys_that_appear_in_no_output(tmp_path, candles):
    index = candles["BTC/USDT"].index
    secrets = {"ENGINE_API_KEY": "kEy-4f8a1c9d2e", "ENGINE_API_SECRET": "sEcReT-77b0e3f1a9"}
    with LoopbackExchange(candles, max_limit=100) as ex:
        config = write_config(tmp_path, config_dict(tmp_path, ex, **{
            **SIZES, "strategies": ["buy_and_hold"], "paper": {"fill": "ticker"}}))
        ex.now_ms = ms(index[239]) + 1000
        state = tmp_path / "s.sqlite"
        code, out, err = finish(cli("run", config, "--state", state, "--once", "--sandbox",
                                    "--no-progress", env=secrets))
        assert code == 0, err
        assert len(ex.orders) == 2 and {o["side"] for o in ex.orders} == {"BUY"}
        status = finish(cli("status", "--state", state))
        ex.inject("500", times=100, path="/api/v3/order")
        ex.now_ms = ms(index[245]) + 1000
        failed = finish(cli("run", config, "--state", tmp_path / "s2.sqlite", "--once",
                            "--sandbox", "--no-progress", env={
                                **secrets, "ENGINE_API_KEY": secrets["ENGINE_API_KEY"]}))
    assert status[0] == 0 and "Total equity" in status[1]
    assert failed[0] == 2
    outputs = [out, err, status[1], status[2], failed[1], failed[2]]
    outputs += [p.read_bytes().decode(errors="replace") for p in tmp_path.rglob("*")
                if p.is_file()]
    for value in secrets.values():
        assert not any(value in text for text in outputs)


def test_sandbox_without_keys_is_one_line(tmp_path, candles):
    with LoopbackExchange(candles) as ex:
        config = write_config(tmp_path, config_dict(tmp_path, ex, **SIZES))
        env = {k: "" for k in ("ENGINE_API_KEY", "ENGINE_API_SECRET")}
        code, _, err = finish(cli("run", config, "--once", "--sandbox", env=env))
    assert code == 2
    assert err.strip().splitlines() == [
        "error: --sandbox needs the environment variable(s) ENGINE_API_KEY, ENGINE_API_SECRET "
        "with the exchange's testnet API key; keys are never read from files"]


def test_status_of_a_missing_state_is_one_line(tmp_path):
    code, _, err = finish(cli("status", "--state", tmp_path / "none.sqlite"))
    assert code == 2 and "no such state file" in err and len(err.strip().splitlines()) == 1


def test_ticker_fills_only_for_the_newest_candle(tmp_path, candles):
    index = candles["BTC/USDT"].index
    with LoopbackExchange(candles, max_limit=100) as ex:
        closed_through(ex, index[239])
        trader, state = make_trader(tmp_path, ex, paper={"fill": "ticker"},
                                    strategies=[{"name": "sma_cross", "fast": 2, "slow": 3}])
        trader.run_once()
        closed_through(ex, index[260])
        trader.run_once()  # catches up on 240..259, then 260 is live
        fills = state.table("fills")
    caught_up = fills[fills["decided_at"] < index[260].isoformat()]
    assert len(caught_up) > 3
    for fill in caught_up.itertuples():  # at the next candle's open, not at today's ticker
        decided = pd.Timestamp(fill.decided_at)
        if decided == index[239]:
            assert fill.time == fill.decided_at  # the first candle was live
            continue
        bar = candles[fill.symbol].loc[decided + pd.Timedelta("1D")]
        assert pd.Timestamp(fill.time) == decided + pd.Timedelta("1D")
        assert fill.price == pytest.approx(min(bar["open"] * 1.0005, bar["high"])
                                           if fill.side == "buy"
                                           else max(bar["open"] * 0.9995, bar["low"]))


def sandbox_trader(tmp_path, ex, monkeypatch):
    from engine.paper.orders import SandboxOrders

    monkeypatch.setenv("ENGINE_API_KEY", "test-key")
    monkeypatch.setenv("ENGINE_API_SECRET", "test-secret")
    trader, state = make_trader(tmp_path, ex, strategies=["buy_and_hold"],
                                paper={"fill": "ticker"},
                                data={"exchange_options": {"timeout": 500,
                                                           "enableRateLimit": False}})
    trader.orders = SandboxOrders(trader.cfg.data, retries=0, backoff_s=0)
    return trader, state


def test_lost_order_reply_is_looked_up_not_sent_twice(tmp_path, candles, monkeypatch):
    index = candles["BTC/USDT"].index
    with LoopbackExchange(candles, max_limit=100) as ex:
        closed_through(ex, index[239])
        trader, state = sandbox_trader(tmp_path, ex, monkeypatch)
        ex.inject("slow", path="/api/v3/order", delay_s=1.0)  # the order arrives, its reply not
        with pytest.raises(TemporaryExchangeError, match="it is sent at the next run"):
            trader.run_once()
        assert state.meta()["last_processed"] == index[239].isoformat()  # fills committed
        assert state.unsent_orders()["symbol"].tolist() == ["BTC/USDT", "ETH/USDT"]
        time.sleep(1.3)  # the slow request completes on the server
        assert trader.run_once() == 0  # no new candle; the pending orders are settled
        assert len(ex.orders) == 2  # one per fill: the first was found, not resent
        ids = state.table("fills")["exchange_order_id"].tolist()
        assert ids == [str(o["orderId"]) for o in ex.orders]


def test_sandbox_refusal_is_recorded_and_trading_goes_on(tmp_path, candles, monkeypatch):
    index = candles["BTC/USDT"].index
    with LoopbackExchange(candles, max_limit=100) as ex:
        closed_through(ex, index[239])
        trader, state = sandbox_trader(tmp_path, ex, monkeypatch)
        ex.inject("insufficient", path="/api/v3/order")
        assert trader.run_once() == 1
        ids = state.table("fills")["exchange_order_id"].tolist()
    assert ids[0].startswith("rejected: ") and "insufficient balance" in ids[0]
    assert ids[1] == "1"


def test_sandbox_refuses_a_remote_api_url(tmp_path, candles, monkeypatch):
    from engine.errors import ConfigError
    from engine.paper.orders import SandboxOrders

    monkeypatch.setenv("ENGINE_API_KEY", "k")
    monkeypatch.setenv("ENGINE_API_SECRET", "s")
    cfg = validate_config(config_dict(tmp_path, data={"api_url": "https://proxy.example.com"}))
    with pytest.raises(ConfigError, match="cannot be used with --sandbox"):
        SandboxOrders(cfg.data)


def test_a_second_process_cannot_apply_the_same_candle(tmp_path, candles):
    from engine.paper.state import CandleUpdate

    index = candles["BTC/USDT"].index
    with LoopbackExchange(candles, max_limit=100) as ex:
        closed_through(ex, index[239])
        trader, state = make_trader(tmp_path, ex)
        trader.run_once()
        stale = CandleUpdate(index[240].isoformat(), state.accounts(), [])
        with pytest.raises(StateError, match="being updated by another paper-trading process"):
            state.apply(stale, expected_last=None)
        assert state.meta()["last_processed"] == index[239].isoformat()


def test_paper_pays_the_backtests_funding_on_a_perpetual_future(tmp_path):
    """binanceusdm candles and funding through the loopback exchange: the paper account
    pays each candle's funding (and interest) as the backtest does over the same bars."""
    from engine.data.funding import per_bar
    from engine.execution.records import FUNDING

    perp = "BTC/USDT:USDT"
    frame = make_ohlcv(280, seed=1, price=10_000.0).round(8)
    times = pd.date_range(frame.index[0], periods=3 * 280, freq="8h", tz="UTC")
    rates = pd.Series(np.random.default_rng(3).normal(2e-4, 4e-4, len(times)).round(8),
                      index=times)
    index = frame.index
    spec = {"name": "sma_cross", "fast": 2, "slow": 6, "short": True}
    with LoopbackExchange({perp: frame}, max_limit=100, funding={perp: rates}) as ex:
        closed_through(ex, index[229])
        trader, state = make_trader(
            tmp_path, ex, strategies=[spec], broker={"borrow_rate": 0.1},
            data={"exchange": "binanceusdm", "symbols": [perp], "market": "perp"})
        trader.run_once()
        for last in (240, 241, 279):
            closed_through(ex, index[last])
            trader.run_once()
        paper_candles, accounts = state.table("candles"), state.accounts()
    cfg = trader.cfg
    bars = frame.assign(**{FUNDING: per_bar(rates, index, pd.Timedelta("1D"))})
    run = simulate({perp: bars}, get_strategy("sma_cross"),
                   {k: v for k, v in spec.items() if k != "name"}, cfg.broker,
                   trade_start=index[229], timeframe="1d")
    np.testing.assert_allclose(run.equity.to_numpy(), paper_candles["equity"].to_numpy(),
                               rtol=1e-9)
    assert run.funding != 0 and accounts[perp]["funding"] == pytest.approx(run.funding,
                                                                          rel=1e-9)
    assert accounts[perp]["borrow"] == pytest.approx(run.borrow, rel=1e-9)


def test_carry_settings_bind_a_state_only_when_they_charge_something(tmp_path):
    from engine.paper.trader import fingerprint

    raw = config_dict(tmp_path, None)
    plain = fingerprint(validate_config(raw))
    # written out at their defaults they change nothing: states made before them still open
    explicit = {**raw, "data": {**raw["data"], "market": "spot"}, "broker": {"borrow_rate": 0.0}}
    assert fingerprint(validate_config(explicit)) == plain
    charged = {**raw, "broker": {"borrow_rate": 0.05}}
    assert fingerprint(validate_config(charged)) != plain
