"""trades.csv, fills.csv and the new report.json figures, checked against each other."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def files(small_run):
    out = small_run.output_dir
    report = json.loads((out / "report.json").read_text())
    trades = pd.read_csv(out / "trades.csv", parse_dates=["entry_time", "exit_time"])
    fills = pd.read_csv(out / "fills.csv", parse_dates=["time", "decided_at"])
    return report, trades, fills


def test_trades_add_up_to_the_equity_change(small_run, files):
    report, trades, _ = files
    cash = small_run.config.broker.cash
    assert list(trades.columns) == ["strategy", "account", "symbol", "side", "size", "entry_time",
                                    "entry_price", "exit_time", "exit_price", "pnl", "return",
                                    "fees", "bars_held", "open_at_end"]
    for entry in report["strategies"]:
        mine = trades[(trades.strategy == entry["strategy"])
                      & (trades.account == entry["symbol"])]
        assert len(mine) == entry["n_trades"]
        # every round trip after fees, the open one marked at the last close, is the P&L
        assert mine["pnl"].sum() == pytest.approx(entry["final_equity"] - cash, rel=1e-9)
        assert entry["expectancy"] == pytest.approx(mine["pnl"].mean())
        assert entry["best_trade"] == pytest.approx(mine["pnl"].max())
        assert entry["worst_trade"] == pytest.approx(mine["pnl"].min())
        assert entry["avg_bars_held"] == pytest.approx(mine["bars_held"].mean())
        gains, losses = mine.pnl[mine.pnl > 0].sum(), -mine.pnl[mine.pnl < 0].sum()
        if losses > 0:
            assert entry["profit_factor"] == pytest.approx(gains / losses)
    hold = trades[trades.strategy == "buy_and_hold"]
    fees = {e["symbol"]: e["fees_paid"] for e in report["strategies"]
            if e["strategy"] == "buy_and_hold"}
    assert hold["fees"].tolist() == pytest.approx([fees[s] for s in hold["symbol"]])
    active = trades[trades.strategy.str.startswith("sma_cross")]
    assert len(active) > 3 and (active["bars_held"] >= 1).all()
    closed = active[~active.open_at_end]
    assert (closed["exit_time"] > closed["entry_time"]).all()
    # long-or-flat: each round trip is one buy and one sell, so its figures tie out
    gross = closed["size"] * (closed["exit_price"] - closed["entry_price"])
    assert (closed["pnl"]).tolist() == pytest.approx((gross - closed["fees"]).tolist())
    assert closed["return"].tolist() == pytest.approx(
        (closed["pnl"] / (closed["size"] * closed["entry_price"])).tolist())


def test_fills_follow_their_decision_bar(small_run, files):
    report, _, fills = files
    assert list(fills.columns) == ["strategy", "account", "symbol", "time", "side", "size", "price",
                                   "fee", "value", "decided_at"]
    index = small_run.market.index
    position = {t: i for i, t in enumerate(index)}
    steps = [position[t] - position[d] for t, d in zip(fills["time"], fills["decided_at"],
                                                       strict=True)]
    assert set(steps) == {1}  # decided at a close, filled at the next bar's open
    for entry in report["strategies"]:
        mine = fills[(fills.strategy == entry["strategy"]) & (fills.account == entry["symbol"])]
        assert mine["fee"].sum() == pytest.approx(entry["fees_paid"])


def test_risk_and_benchmark_figures(small_run, files):
    report, _, _ = files
    by_key = {(e["name"], e["symbol"]): e for e in report["strategies"]}
    for symbol in ("BTC/USDT", "ETH/USDT"):
        hold = by_key[("buy_and_hold", symbol)]
        assert hold["beta"] == pytest.approx(1.0, abs=1e-6)  # measured against itself
        assert hold["alpha"] == pytest.approx(0.0, abs=1e-9)
        sma = by_key[("sma_cross", symbol)]
        run = next(r for r in small_run.runs if r.symbol == symbol and r.label == sma["strategy"])
        returns = run.equity.pct_change().dropna()
        assert sma["volatility"] == pytest.approx(returns.std(ddof=1) * np.sqrt(365))
        assert sma["calmar"] == pytest.approx(sma["cagr"] / sma["max_drawdown"])
        assert 0 <= sma["beta"] < 1  # flat part of the time
        assert isinstance(sma["information_ratio"], float)


def test_forecast_diagnostics_in_report(files):
    report, _, _ = files
    for symbol in ("BTC/USDT", "ETH/USDT"):
        diag = report["diagnostics"][symbol]
        dm = diag["diebold_mariano"]
        assert dm["n"] == report["forecast"][symbol]["n"]
        assert 0 <= dm["p_value_model_better"] <= 1
        # one-sided and two-sided p-values of one statistic agree
        assert dm["p_value_two_sided"] == pytest.approx(
            2 * min(dm["p_value_model_better"], 1 - dm["p_value_model_better"]))
        direction = diag["directional"]
        assert direction["accuracy"] == pytest.approx(
            report["forecast"][symbol]["directional_accuracy"])
        assert [q["quintile"] for q in diag["by_strength"]] == [1, 2, 3, 4, 5]
        assert sum(q["n"] for q in diag["by_strength"]) == dm["n"]


def test_portfolio_run_reports_per_account_and_instrument(portfolio_run):
    out = portfolio_run.output_dir
    report = json.loads((out / "report.json").read_text())
    trades = pd.read_csv(out / "trades.csv")
    fills = pd.read_csv(out / "fills.csv")
    cash = portfolio_run.config.broker.cash
    assert set(trades["account"]) == set(fills["account"]) == {"portfolio"}
    assert set(fills["symbol"]) == {"BTC/USDT", "ETH/USDT"}
    for entry in report["strategies"]:
        assert entry["symbol"] == "portfolio"
        mine = trades[trades.strategy == entry["strategy"]]
        assert mine["pnl"].sum() == pytest.approx(entry["final_equity"] - cash, rel=1e-9)
        assert entry["beta"] is not None  # against the buy-and-hold portfolio
    page = (out / "report.html").read_text()
    for symbol in ("BTC\\u002fUSDT", "ETH\\u002fUSDT"):  # plotly's JSON escapes "/"
        assert f"{symbol} in the portfolio: price, trades and forecast" in page
