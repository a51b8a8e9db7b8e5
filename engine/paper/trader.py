"""The paper trader: the backtest's strategy on live candles, with simulated fills.

For each newly closed candle, in order, it:

1. updates the candles (the cache, then the exchange for what is missing);
2. fills the orders decided at the previous candle's close at this candle's open;
3. re-fits the forecaster when the walk-forward schedule says so (the same folds, seeds
   and warm starts as the backtest) and forecasts the next close;
4. runs the configured strategy class in backtrader over the bars its decision looks back
   on (``warmup_bars``), with the paper account's positions, to get its target weights at
   this close (the same code as the backtest: no second copy of the logic);
5. records the targets for the next open, or fills them now at the ticker (``paper.fill``);
6. commits all of it, and the candle as processed, in one SQLite transaction.

Every fill goes through the execution core's ``Account`` (``engine.execution``), the one
the backtest's broker drives, so paper trading and the backtest fill alike. A candle's
cost does not grow with the length of the paper history: the strategy replays a bounded
window and the state is read in bounded pieces.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from engine.config import Config, ModelConfig, StrategySpec
from engine.data import MarketData, MarketDataLoader, utc_now_ms
from engine.data.retry import call_with_retry
from engine.errors import ConfigError, ExchangeError, StateError
from engine.execution import Account, Bar
from engine.folds import fold_plan
from engine.models_store import ModelStore
from engine.paper.orders import SandboxOrders, client_order_id
from engine.paper.state import CandleUpdate, PaperState
from engine.simulation import PORTFOLIO, make_account, restore_account, simulate
from engine.walkforward import forecast_at, load_fold, next_fold, run_walkforward
from strategies.registry import (
    get_strategy,
    name_forecasters,
    resolve_params,
    spec_label,
    user_params,
)

log = logging.getLogger(__name__)


def fingerprint(cfg: Config) -> str:
    """What a state file is bound to: everything that changes trading, not paths or ends."""
    data = cfg.to_dict()
    for key in ("end", "cache_dir", "model_store", "csv", "api_url", "exchange_options",
                "retries", "retry_backoff_s"):
        data["data"].pop(key, None)
    data.pop("output_dir", None)
    data["paper"].pop("poll_seconds", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def chosen_strategy(cfg: Config) -> StrategySpec:
    """The strategy paper-traded: ``paper.strategy`` (a label or name), else the first."""
    wanted = cfg.paper.strategy
    if wanted is None:
        return cfg.strategies[0]
    for spec in cfg.strategies:
        if wanted in (spec_label(spec), spec.name):
            return spec
    known = ", ".join(spec_label(s) for s in cfg.strategies)
    raise ConfigError(f"paper.strategy = {wanted!r} is not one of the configured strategies "
                      f"({known})")


@dataclass
class PaperTrader:
    """Processes closed candles into a state file.

    Args:
        cfg: The run config (the same file the backtest used).
        state: The open state file.
        now_ms: The clock (epoch ms).
        sleep: Waits between polls and retries.
        exchange: A ccxt client to use instead of building one from the config.
        orders: Sends sandbox orders for each fill; None simulates fills only.
        progress: Progress bars while training and downloading.
    """

    cfg: Config
    state: PaperState
    now_ms: Callable[[], int] = utc_now_ms
    sleep: Callable[[float], None] = time.sleep
    exchange: Any = None
    orders: SandboxOrders | None = None
    progress: bool = False
    _models: dict[int, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.cfg.data.csv:
            raise ConfigError("paper trading reads live candles from the exchange; remove "
                              "data.csv from the config")
        self.cfg = name_forecasters(self.cfg)
        self.spec = chosen_strategy(self.cfg)
        cls = get_strategy(self.spec.name)
        read = cls.reads_forecaster({**user_params(cls), **self.spec.params}, self.cfg)
        # The forecaster the traded strategy reads (a model: section stays one, with its
        # folds' file layout); None when it reads none: then nothing is fit.
        self.forecaster = None if read is None else \
            (self.cfg.model if self.cfg.forecasters is None else self.cfg.forecaster(read))
        self._check_state()
        self.store = ModelStore.for_data(self.cfg.data)  # the backtest's fitted folds
        self.loader = MarketDataLoader(self.cfg.data.model_copy(update={"end": None}),
                                       exchange=self.exchange, now_ms=self.now_ms,
                                       sleep=self.sleep, progress=self.progress)

    @property
    def model_dir(self) -> Path:
        return self.state.path.with_name(f"{self.state.path.stem}_models")

    def _check_state(self) -> None:
        meta = self.state.meta()
        mine = fingerprint(self.cfg)
        if meta and meta.get("fingerprint") != mine:
            raise StateError(
                f"{self.state.path} was made with another config ({meta.get('config_file')}, "
                f"strategy {meta.get('strategy')}); use the config it was made with, or a new "
                "--state file")

    # --- the loop -----------------------------------------------------------------------

    def run_once(self) -> int:
        """Process every closed candle not processed yet; returns how many."""
        market = self.loader.load()
        meta = self.state.meta()
        index = market.index
        if "last_processed" not in meta:
            self._start(market)
            pending = [len(index) - 1]
        else:
            last = pd.Timestamp(meta["last_processed"])
            pending = [i for i in range(len(index)) if index[i] > last]
        for t in pending:
            self._report_gaps(market, index[t])
            meta = self.state.meta()
            self.state.apply(self._process(market, t, meta, live=t == len(index) - 1),
                             expected_last=meta.get("last_processed"))
        if self.orders is not None:
            self.orders.send_pending(self.state)
        return len(pending)

    def run_forever(self, max_polls: int | None = None) -> None:
        """Poll for closed candles every ``paper.poll_seconds`` until interrupted.

        A temporary exchange failure (after its retries) is logged and tried again at the
        next poll; every other error stops the loop.
        """
        from engine.errors import TemporaryExchangeError

        polls = 0
        while max_polls is None or polls < max_polls:
            try:
                processed = self.run_once()
                if processed:
                    log.info("processed %d candle(s); last %s", processed,
                             self.state.meta()["last_processed"])
            except TemporaryExchangeError as exc:
                log.warning("%s; trying again in %gs", exc, self.cfg.paper.poll_seconds)
            polls += 1
            self.sleep(self.cfg.paper.poll_seconds)

    # --- one candle ---------------------------------------------------------------------

    def _start(self, market: MarketData) -> None:
        """A new state file: new accounts, bound to this config, starting at the last candle."""
        accounts = {self._name(symbols): make_account(self.cfg.broker).to_dict()
                    for symbols in self.cfg.symbol_groups}
        self.state.initialise({
            "fingerprint": fingerprint(self.cfg), "config_file": str(self.cfg.source),
            "config": self.cfg.to_dict(), "strategy": spec_label(self.spec),
            "start": market.index[-1].isoformat(), "symbols": list(self.cfg.traded_symbols),
            "fill": self.cfg.paper.fill, "broker": self.cfg.broker.model_dump(),
            "instance": uuid.uuid4().hex[:6]}, accounts)

    def _report_gaps(self, market: MarketData, when: pd.Timestamp) -> None:
        for symbol, report in market.reports.items():
            if when in report.gaps.missing:
                log.warning("%s: the exchange has no candle at %s; it was filled as a flat, "
                            "zero-volume candle (data.gap_policy: fill)", symbol, when)

    def _process(self, market: MarketData, t: int, meta: dict, live: bool) -> CandleUpdate:
        """One candle's changes. ``live``: it is the newest candle, so a ticker is current
        (candles caught up after downtime fill at the next open, never at today's price)."""
        frames = {s: f.iloc[: t + 1] for s, f in market.frames.items()}
        when = market.index[t].isoformat()
        accounts = self._accounts()
        update = CandleUpdate(when, {}, [])
        # 1. Targets decided at the previous close fill at this candle's open.
        for name, (targets, resize, decided_at) in self._open_orders().items():
            symbols = self._symbols(name)
            bars = {s: Bar(*frames[s].iloc[-1][["open", "high", "low"]]) for s in symbols}
            self._fill(update, name, accounts[name], targets, bars, t, decided_at, resize, meta)
        # 2. The forecaster: re-fit when the schedule says so, then forecast the next close.
        if self.forecaster is not None:
            fold, model_file, row = self._forecast(frames, t, meta)
            update.meta.update(model_fold=fold, model_file=model_file)
            update.forecasts = [{"time": when, "symbol": s, "pred_close": close,
                                 "pred_return": ret, "fold": fold} for s, (close, ret) in
                                row.items()]
        # 3. The strategy's decision at this close, from the backtest's own class.
        for symbols in self.cfg.symbol_groups:
            name, account = self._name(symbols), accounts[self._name(symbols)]
            decision = self._decide({s: frames[s] for s in symbols}, account, update.forecasts)
            if decision is None or not account.changes(*decision):
                continue
            targets, resize = decision
            if self.cfg.paper.fill == "ticker" and live:
                bars = {s: Bar(self._ticker(s)) for s in symbols}
                self._fill(update, name, account, targets, bars, t, when, resize, meta)
            else:
                update.open_orders += [{"account": name, "symbol": s, "target": w,
                                        "resize": int(resize), "decided_at": when}
                                       for s, w in targets.items()]
        # 4. Mark every account at this close.
        for symbols in self.cfg.symbol_groups:
            name, account = self._name(symbols), accounts[self._name(symbols)]
            closes = {s: float(frames[s]["close"].iloc[-1]) for s in symbols}
            equity = account.equity(closes)
            for symbol in symbols:
                bar = frames[symbol].iloc[-1]
                update.candles.append({
                    "time": when, "symbol": symbol, "account": name, "open": bar["open"],
                    "high": bar["high"], "low": bar["low"], "close": bar["close"],
                    "position": account.size(symbol), "cash": account.cash, "equity": equity})
            update.accounts[name] = account.to_dict()
        return update

    @staticmethod
    def _name(symbols: tuple[str, ...]) -> str:
        """An account's name: its symbol, or ``portfolio`` for a shared account."""
        return symbols[0] if len(symbols) == 1 else PORTFOLIO

    def _symbols(self, name: str) -> tuple[str, ...]:
        """The symbols the account ``name`` trades."""
        return next(s for s in self.cfg.symbol_groups if self._name(s) == name)

    def _accounts(self) -> dict[str, Account]:
        return {name: restore_account(data, self.cfg.broker)
                for name, data in self.state.accounts().items()}

    def _open_orders(self) -> dict[str, tuple[dict[str, float], bool, str]]:
        """Per account: (targets, resize, decided_at) waiting for this open."""
        orders: dict[str, tuple[dict[str, float], bool, str]] = {}
        for row in self.state.open_orders():
            targets, _, _ = orders.setdefault(row["account"],
                                              ({}, bool(row["resize"]), row["decided_at"]))
            targets[row["symbol"]] = row["target"]
        return orders

    def _fill(self, update: CandleUpdate, name: str, account: Account,
              targets: dict[str, float], bars: dict[str, Bar], t: int, decided_at: str,
              resize: bool, meta: dict) -> None:
        fills, trades = account.rebalance(targets, bars, update.time, decided_at, bar=t,
                                          resize=resize)
        for fill in fills:
            fill["account"] = name
            if self.orders is not None:  # sent after the commit (SandboxOrders.send_pending)
                fill["client_order_id"] = client_order_id(meta["instance"], update.time,
                                                          fill["symbol"])
        update.fills += fills
        update.trades += [{**{k: v for k, v in trade.items() if k != "open_at_end"},
                           "account": name} for trade in trades]

    def _ticker(self, symbol: str) -> float:
        exchange = self.loader.downloader.exchange
        ticker = call_with_retry(lambda: exchange.fetch_ticker(symbol),
                                 what=f"{exchange.id} {symbol} ticker",
                                 retries=self.cfg.data.retries,
                                 backoff_s=self.cfg.data.retry_backoff_s, sleep=self.sleep)
        if ticker.get("last") is None:
            raise ExchangeError(f"{exchange.id} returned no last price for {symbol}; set "
                                "paper.fill to open")
        return float(ticker["last"])

    def _forecast(self, frames: dict[str, pd.DataFrame], t: int,
                  meta: dict) -> tuple[int, str, dict[str, tuple[float, float]]]:
        """(fold, model file, {symbol: (predicted close, predicted return)}) for bar t."""
        fc, wf = self.forecaster, self.cfg.walkforward
        index = next(iter(frames.values())).index
        window = max(f.window_len for f in self.cfg.forecaster_configs)
        plan = fold_plan(index, wf, window)[-1]
        fold = meta.get("model_fold")
        if fold is None:  # the first candle: the whole walk-forward up to here
            entries = fc if isinstance(fc, ModelConfig) else [fc]
            result = run_walkforward(frames, entries, wf, self.model_dir, progress=self.progress,
                                     store=self.store, plan_window=window)
            model_file = result.folds[-1].model_file
        elif plan.index != fold:  # a re-fit is due: the next fold, from this fold's model
            previous = self._model(fold, meta["model_file"])
            record = next_fold(frames, previous, fc, wf, self.model_dir, self.store,
                               plan_window=window)
            model_file = record.model_file
        else:
            model_file = meta["model_file"]
        model = self._model(plan.index, model_file)
        self._models = {plan.index: model}  # keep only the fold in use
        return plan.index, model_file, forecast_at(frames, fc, wf, model, t, window)

    def _model(self, fold: int, model_file: str) -> Any:
        if fold not in self._models:
            path = self.model_dir.parent / model_file
            if not path.exists():
                raise StateError(f"{path}: the model of fold {fold} is missing; restore it or "
                                 "start a new --state file")
            try:
                self._models[fold] = load_fold(self.forecaster, path)
            except Exception as exc:  # Keras reports a cut-off file as "File not found"
                raise StateError(f"{path}: the model of fold {fold} cannot be read, the file "
                                 f"is damaged ({type(exc).__name__}); put back a good copy of "
                                 "it, or start a new --state file") from None
        return self._models[fold]

    def _decide(self, frames: dict[str, pd.DataFrame], account: Account,
                new: list[dict]) -> tuple[dict[str, float], bool] | None:
        """The strategy's targets at the last bar of ``frames``, with ``account``'s positions.

        Only the bars the decision looks back on are replayed (the strategy's
        ``warmup_bars``), so this costs the same after ten candles as after ten thousand.
        """
        cls = get_strategy(self.spec.name)
        params = resolve_params(self.spec.name, self.spec.params)
        keep = cls.warmup_bars({**user_params(cls), **params}) + 1
        window = {s: f.iloc[-keep:] for s, f in frames.items()}
        start = next(iter(window.values())).index[0]
        forecasts = None
        if cls.needs_forecast:
            rows = pd.concat([self.state.recent_forecasts(start.isoformat()), pd.DataFrame(new)])
            rows.index = pd.DatetimeIndex(pd.to_datetime(rows["time"], utc=True))
            forecasts = {s: rows.loc[rows["symbol"] == s, ["pred_close", "pred_return"]]
                         for s in frames}
        last = next(iter(window.values())).index[-1]
        run = simulate(window, cls, params, self.cfg.broker, trade_start=last,
                       forecasts=forecasts, account=account, fill=False)
        return run.pending
