"""The backtest driver: a strategy in backtrader's event loop, trading one account.

One rule everywhere (backtest, paper trading, the RL environment, sweeps): a strategy
decides target weights at a bar's close, and the execution core (``engine.execution``)
fills them at the next bar's open, moved against the trader by ``broker.slippage`` (capped
to that bar's high/low), with ``broker.commission`` charged on the traded value. Positions
may be fractional. With one symbol the run is that symbol's; with several (portfolio mode)
they share one account and one cash balance.

This module only drives: ``CoreBroker`` hands backtrader's decisions to the account and
reads positions, cash and value back from it (backtrader's own order book and commission
schemes are never used), ``Recorder`` notes equity and positions at each close, and
``simulate`` returns the account's records as a ``StrategyRun``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import backtrader as bt
import pandas as pd

from engine.config import BrokerConfig
from engine.errors import ExecutionError
from engine.execution import (
    PORTFOLIO,
    Account,
    Bar,
    Fill,
    RoundTrip,
    StrategyRun,
    contributions,
    make_account,
)
from engine.execution.records import FUNDING, in_utc
from strategies.base import TargetStrategy


class CoreBroker(bt.BrokerBase):
    """A ``bt.BrokerBase`` that delegates every fill to an ``Account``.

    Params:
        account: The account to trade.
        fill: Fill decisions at the next open. False only records decisions (paper
            trading's replay of the decision bar). Defaults to True.
        funding: Per symbol, the perpetual funding rate summed over each bar (by bar
            number), paid at each close; None for spot markets.
    """

    params = (("account", None), ("fill", True), ("funding", None))

    def __init__(self):
        super().__init__()
        self.account: Account = self.p.account
        self.pending: tuple[dict[str, float], bool, dt.datetime] | None = None
        self.fills: list[Fill] = []
        self.trades: list[RoundTrip] = []
        self._datas: dict[str, Any] = {}
        self._positions: dict[str, bt.Position] = {}
        self.startingcash = self.account.cash  # read by backtrader's writer info

    def start(self):
        super().start()
        self._datas = {d._name: d for d in self.cerebro.datas}
        self._positions = {name: bt.Position() for name in self._datas}
        self._sync_positions()

    # --- what strategies and analyzers read --------------------------------------------

    def getcash(self) -> float:
        return self.account.cash

    def getvalue(self, datas=None) -> float:
        account = self.account
        if not account.positions:
            return account.cash
        return account.equity({s: d.close[0] for s, d in self._datas.items()})

    def getposition(self, data) -> bt.Position:
        return self._positions[data._name]

    def get_notification(self):
        return None  # fills are reported through ``fills`` and ``trades``, not bt orders

    # --- decisions and fills ------------------------------------------------------------

    def order_targets(self, weights: dict[str, float], resize: bool,
                      decided_at: dt.datetime) -> None:
        """Record target weights decided at this close, to fill at the next open."""
        self.pending = (weights, resize, decided_at)

    def next(self):
        """A new bar: fill at its open what the previous close decided, then pay the bar's
        funding and borrow interest at its close (before the strategy and the recorder
        read it)."""
        pending, self.pending = self.pending, None
        if not self.p.fill:
            return
        if pending is not None:
            weights, resize, decided_at = pending
            first = next(iter(self._datas.values()))
            when = first.datetime.datetime(0)
            bars = {s: Bar(d.open[0], d.high[0], d.low[0]) for s, d in self._datas.items()}
            fills, trades = self.account.rebalance(weights, bars, when, decided_at,
                                                   bar=len(first) - 1, resize=resize)
            self.fills += fills
            self.trades += trades
            self._sync_positions()
        if self.p.funding:
            bar = len(next(iter(self._datas.values()))) - 1
            self.account.fund({s: d.open[0] for s, d in self._datas.items()},
                              {s: rates[bar] for s, rates in self.p.funding.items()})
        if self.account.borrow_per_bar:
            self.account.accrue({s: d.close[0] for s, d in self._datas.items()})

    def _sync_positions(self) -> None:
        for symbol, position in self._positions.items():
            held = self.account.positions.get(symbol)
            position.size = held.size if held else 0.0
            position.price = held.entry_price if held else 0.0

    def buy(self, *args, **kwargs):
        raise ExecutionError("strategies of this engine give target weights (decide or "
                             "signal), not backtrader orders; see strategies/base.py")

    sell = submit = buy

    def cancel(self, order):
        return False


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


def feed(frame: pd.DataFrame, name: str) -> bt.feeds.PandasData:
    """A backtrader feed over an OHLCV frame (backtrader wants naive UTC datetimes)."""
    naive = frame.copy()
    naive.index = frame.index.tz_convert("UTC").tz_localize(None)
    return bt.feeds.PandasData(dataname=naive, name=name, openinterest=None)


def simulate(frames: Mapping[str, pd.DataFrame], strategy: type[TargetStrategy],
             params: dict[str, Any], broker: BrokerConfig, label: str | None = None,
             trade_start: pd.Timestamp | None = None,
             forecasts: Mapping[str, pd.DataFrame] | None = None,
             account: Account | None = None, fill: bool = True,
             timeframe: str | None = None) -> StrategyRun:
    """Run ``strategy`` over ``frames`` and record what happened from ``trade_start`` on.

    Args:
        frames: OHLCV per traded symbol on one shared index, including any warm-up bars
            before ``trade_start``. Several symbols share one account (portfolio mode).
        strategy: A ``TargetStrategy`` subclass.
        params: Its parameters (already checked by the registry).
        broker: Cash, commission, slippage, leverage and borrow interest.
        label: Display name. Defaults to the strategy's name.
        trade_start: First bar whose decisions are traded. Defaults to the first bar.
        forecasts: Forecast table per symbol, for strategies that need one.
        account: The account to trade. Defaults to a fresh one from ``broker``.
        fill: False only records decisions (``pending`` holds the last one).
        timeframe: The bars' timeframe (``data.timeframe``), which ``broker.borrow_rate``
            is charged per bar of; needed when that rate is set and no ``account`` is given.
    """
    account = account if account is not None else make_account(broker, timeframe)
    cerebro = bt.Cerebro(stdstats=False)
    funding = {s: f[FUNDING].to_numpy("float64") for s, f in frames.items()
               if FUNDING in f.columns}
    core = CoreBroker(account=account, fill=fill, funding=funding or None)
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
    fills, trades = in_utc(core.fills,
                           core.trades + account.open_trades(last, None, _last_bar(frames)))
    pending = core.pending[:2] if core.pending else None
    return StrategyRun(label or strategy.name, symbols[0] if len(symbols) == 1 else PORTFOLIO,
                       pd.Series(rec.values, index, name="equity"), position, fills, trades,
                       account.fees, pending, contributions(account, position, last),
                       borrow=account.borrow, funding=account.funding)


def _last_bar(frames: Mapping[str, pd.DataFrame]) -> int:
    return len(next(iter(frames.values()))) - 1
