"""Run one strategy on one symbol in backtrader with the configured broker costs.

Fills follow one rule everywhere (backtest and paper trading alike): a strategy decides at
a bar's close, and its order fills at the next bar's open, moved against the trader by
``broker.slippage`` (capped to that bar's high/low), with ``broker.commission`` charged on
the traded value. Positions may be fractional.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import backtrader as bt
import pandas as pd

from engine.config import BrokerConfig
from strategies.base import CryptoCommission, TargetStrategy


@dataclass
class StrategyRun:
    """Everything one (strategy, symbol) run produced, from the first traded bar on."""

    label: str
    symbol: str
    equity: pd.Series  # broker value at each bar's close, UTC index
    position: pd.Series  # position size (units of the base asset) at each close
    fills: pd.DataFrame  # time, side, size, price, commission, value
    trades: list[dict[str, Any]] = field(default_factory=list)  # round trips, P&L after fees
    fees: float = 0.0
    pending: float | None = None  # target decided at the last bar, for the next bar's open


class Recorder(bt.Analyzer):
    """Records equity, position, fills and round-trip trades from ``start`` on."""

    params = (("start", None),)

    def start(self):
        self.times: list[dt.datetime] = []
        self.values: list[float] = []
        self.sizes: list[float] = []
        self.fills: list[dict[str, Any]] = []
        self.trades: list[dict[str, Any]] = []
        self.fees = 0.0

    def prenext(self):
        self.next()

    def next(self):
        now = self.strategy.datetime.datetime(0)
        if self.p.start is None or now >= self.p.start:
            self.times.append(now)
            self.values.append(self.strategy.broker.getvalue())
            self.sizes.append(self.strategy.position.size)

    def notify_order(self, order):
        if order.status != order.Completed:
            return
        ex = order.executed
        self.fees += ex.comm
        self.fills.append({"time": bt.num2date(ex.dt), "side": "buy" if order.isbuy() else "sell",
                           "size": abs(ex.size), "price": ex.price, "commission": ex.comm,
                           "value": abs(ex.size) * ex.price})

    def notify_trade(self, trade):
        if trade.isclosed:
            self.trades.append({"open": bt.num2date(trade.dtopen),
                                "close": bt.num2date(trade.dtclose),
                                "pnl": trade.pnlcomm, "open_at_end": False})

    def stop(self):
        position = self.strategy.position
        if position.size:  # mark an open round trip at the last close, entry fee included
            comminfo = self.strategy.broker.getcommissioninfo(self.strategy.data)
            entry_fee = comminfo.getcommission(position.size, position.price)
            pnl = position.size * (self.strategy.data.close[0] - position.price) - entry_fee
            self.trades.append({"open": self.fills[-1]["time"] if self.fills else None,
                                "close": None, "pnl": pnl, "open_at_end": True})


def make_cerebro(broker: BrokerConfig) -> bt.Cerebro:
    """A cerebro whose orders fill at the next open, with the configured costs."""
    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True)
    cerebro.broker.setcash(broker.cash)
    cerebro.broker.addcommissioninfo(CryptoCommission(commission=broker.commission))
    cerebro.broker.set_slippage_perc(broker.slippage, slip_open=True, slip_limit=True,
                                     slip_match=True, slip_out=False)
    return cerebro


def feed(frame: pd.DataFrame, name: str) -> bt.feeds.PandasData:
    """A backtrader feed over an OHLCV frame (backtrader wants naive UTC datetimes)."""
    naive = frame.copy()
    naive.index = frame.index.tz_convert("UTC").tz_localize(None)
    return bt.feeds.PandasData(dataname=naive, name=name, openinterest=None)


def simulate(frame: pd.DataFrame, symbol: str, strategy: type[TargetStrategy],
             params: dict[str, Any], broker: BrokerConfig, label: str | None = None,
             trade_start: pd.Timestamp | None = None,
             forecasts: pd.DataFrame | None = None) -> StrategyRun:
    """Run ``strategy`` over ``frame`` and record what happened from ``trade_start`` on.

    Args:
        frame: One symbol's OHLCV, including any warm-up bars before ``trade_start``.
        symbol: The symbol traded (for labels).
        strategy: A ``TargetStrategy`` subclass.
        params: Its parameters (already checked by the registry).
        broker: Cash, commission and slippage.
        label: Display name. Defaults to the strategy's name.
        trade_start: First bar whose decisions are traded. Defaults to the first bar.
        forecasts: This symbol's forecast table, for strategies that need one.
    """
    cerebro = make_cerebro(broker)
    cerebro.adddata(feed(frame, symbol))
    start = None if trade_start is None else trade_start.tz_convert("UTC").tz_localize(None)
    kwargs = dict(params, trade_start=start)
    if strategy.needs_forecast:
        kwargs["forecasts"] = forecasts
    cerebro.addstrategy(strategy, **kwargs)
    cerebro.addanalyzer(Recorder, _name="recorder", start=start)
    result = cerebro.run(maxcpus=1)[0]
    rec = result.analyzers.recorder
    index = pd.DatetimeIndex(rec.times, name="timestamp").tz_localize("UTC")
    fills = pd.DataFrame(rec.fills, columns=["time", "side", "size", "price", "commission",
                                             "value"])
    if not fills.empty:
        fills["time"] = pd.to_datetime(fills["time"]).dt.tz_localize("UTC")
    return StrategyRun(label or strategy.name, symbol, pd.Series(rec.values, index, name="equity"),
                       pd.Series(rec.sizes, index, name="position"), fills, rec.trades,
                       0.0 if math.isnan(rec.fees) else rec.fees, result.pending_target)
