"""The backtest driver: a strategy in backtrader's event loop, trading one account.

One rule everywhere (backtest, paper trading, the RL environment, sweeps): a strategy
decides target weights at a bar's close, and the execution core (``engine.execution``)
fills them at the next bar's open, moved against the trader by ``broker.slippage`` (capped
to that bar's high/low), with ``broker.commission`` charged on the traded value. Positions
may be fractional. With one symbol the run is that symbol's; with several (portfolio mode)
they share one account and one cash balance.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import backtrader as bt
import pandas as pd

from engine.config import BrokerConfig
from engine.execution import Account, CoreBroker, CostModel
from strategies.base import TargetStrategy

PORTFOLIO = "portfolio"  # the symbol of a run whose symbols share one account


@dataclass
class StrategyRun:
    """Everything one (strategy, symbol) or portfolio run produced, from the first traded bar.

    ``fills`` has columns time, symbol, side, size, price, commission, value, decided_at;
    each trade is a dict with symbol, side, size, entry_time, exit_time, entry_price,
    exit_price, pnl (after all fees), fees, return, bars_held, open_at_end.
    """

    label: str
    symbol: str  # the traded symbol, or "portfolio"
    equity: pd.Series  # account equity at each bar's close, UTC index
    position: pd.DataFrame  # units held of each symbol at each close
    fills: pd.DataFrame
    trades: list[dict[str, Any]] = field(default_factory=list)
    fees: float = 0.0
    pending: tuple[dict[str, float], bool] | None = None  # decided at the last bar, unfilled
    contributions: dict[str, dict[str, float]] = field(default_factory=dict)  # per symbol

    @property
    def symbols(self) -> list[str]:
        return list(self.position.columns)


_FILL_COLUMNS = ["time", "symbol", "side", "size", "price", "commission", "value", "decided_at"]


class Recorder(bt.Analyzer):
    """Records equity and positions at each close from ``start`` on."""

    params = (("start", None),)

    def start(self):
        self.times: list[dt.datetime] = []
        self.values: list[float] = []
        self.sizes: list[tuple[float, ...]] = []
        self._broker = self.strategy.broker
        self._names = [d._name for d in self.strategy.datas]

    def prenext(self):
        self.next()

    def next(self):
        now = self.strategy.datetime.datetime(0)
        if self.p.start is None or now >= self.p.start:
            self.times.append(now)
            self.values.append(self._broker.getvalue())
            account = self._broker.account
            self.sizes.append(tuple(account.size(s) for s in self._names))


def cost_model(broker: BrokerConfig) -> CostModel:
    """The configured commission and slippage."""
    return CostModel(broker.commission, broker.slippage)


def make_account(broker: BrokerConfig) -> Account:
    """A fresh account with the configured cash, costs and leverage."""
    return Account(broker.cash, cost_model(broker), broker.leverage)


def restore_account(state: Mapping[str, Any], broker: BrokerConfig) -> Account:
    """The account ``Account.to_dict`` saved, with the configured costs and leverage."""
    return Account.from_dict(state, cost_model(broker), broker.leverage)


def feed(frame: pd.DataFrame, name: str) -> bt.feeds.PandasData:
    """A backtrader feed over an OHLCV frame (backtrader wants naive UTC datetimes)."""
    naive = frame.copy()
    naive.index = frame.index.tz_convert("UTC").tz_localize(None)
    return bt.feeds.PandasData(dataname=naive, name=name, openinterest=None)


def simulate(frames: Mapping[str, pd.DataFrame], strategy: type[TargetStrategy],
             params: dict[str, Any], broker: BrokerConfig, label: str | None = None,
             trade_start: pd.Timestamp | None = None,
             forecasts: Mapping[str, pd.DataFrame] | None = None,
             account: Account | None = None, fill: bool = True) -> StrategyRun:
    """Run ``strategy`` over ``frames`` and record what happened from ``trade_start`` on.

    Args:
        frames: OHLCV per traded symbol on one shared index, including any warm-up bars
            before ``trade_start``. Several symbols share one account (portfolio mode).
        strategy: A ``TargetStrategy`` subclass.
        params: Its parameters (already checked by the registry).
        broker: Cash, commission, slippage and leverage.
        label: Display name. Defaults to the strategy's name.
        trade_start: First bar whose decisions are traded. Defaults to the first bar.
        forecasts: Forecast table per symbol, for strategies that need one.
        account: The account to trade. Defaults to a fresh one from ``broker``.
        fill: False only records decisions (``pending`` holds the last one).
    """
    account = account if account is not None else make_account(broker)
    cerebro = bt.Cerebro(stdstats=False)
    core = CoreBroker(account=account, fill=fill)
    cerebro.setbroker(core)
    for symbol, frame in frames.items():
        cerebro.adddata(feed(frame, symbol))
    start = None if trade_start is None else trade_start.tz_convert("UTC").tz_localize(None)
    kwargs = dict(params, trade_start=start)
    if strategy.needs_forecast:
        kwargs["forecasts"] = dict(forecasts or {})
    cerebro.addstrategy(strategy, **kwargs)
    cerebro.addanalyzer(Recorder, _name="recorder", start=start)
    result = cerebro.run(maxcpus=1)[0]
    rec = result.analyzers.recorder
    index = pd.DatetimeIndex(rec.times, name="timestamp").tz_localize("UTC")
    symbols = list(frames)
    position = pd.DataFrame(rec.sizes, index=index, columns=symbols, dtype="float64")
    last = {s: f["close"].iloc[-1] for s, f in frames.items()}
    trades = core.trades + account.open_trades(last, None, _last_bar(frames))
    pending = core.pending[:2] if core.pending else None
    return StrategyRun(label or strategy.name, symbols[0] if len(symbols) == 1 else PORTFOLIO,
                       pd.Series(rec.values, index, name="equity"), position,
                       _fills_table(core.fills), _utc_times(trades), account.fees, pending,
                       contributions(account, position, last))


def _fills_table(fills: list[dict[str, Any]]) -> pd.DataFrame:
    """Fill records as a DataFrame with UTC times (the columns of ``_FILL_COLUMNS``)."""
    frame = pd.DataFrame(fills, columns=_FILL_COLUMNS)
    for column in ("time", "decided_at"):
        if not frame.empty:
            frame[column] = pd.to_datetime(frame[column]).dt.tz_localize("UTC")
    return frame


def contributions(account: Account, position: pd.DataFrame,
                  closes: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Per symbol: P&L brought (cash flows plus the open position), fees and exposure."""
    return {s: {"pnl": account.contribution(s, closes[s]),
                "fees": account.fees_by_symbol.get(s, 0.0),
                "exposure": float((position[s] != 0).mean()) if len(position) else 0.0}
            for s in position.columns}


def _last_bar(frames: Mapping[str, pd.DataFrame]) -> int:
    return len(next(iter(frames.values()))) - 1


def _utc_times(trades: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for trade in trades:
        for key in ("entry_time", "exit_time"):
            value = trade[key]
            if isinstance(value, dt.datetime):
                trade[key] = pd.Timestamp(value, tz="UTC")
    return trades
