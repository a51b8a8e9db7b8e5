"""``python -m engine.paper run CONFIG`` and ``python -m engine.paper status --state PATH``.

run     process every closed candle not processed yet, then keep waiting for new ones
        (``--once``: process what is pending and exit, for cron). ``--sandbox`` also sends
        each fill as a market order to the exchange's testnet, with keys taken from the
        environment; without it nothing is ever sent. Real-money trading is refused.
status  equity, positions, realised and unrealised P&L, P&L against buy-and-hold since
        the start, open orders and recent fills; writes the paper equity curve as a PNG.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from engine.cli import run_cli
from engine.config import BrokerConfig, load_config
from engine.errors import StateError
from engine.paper import broker as paper_broker
from engine.paper.state import Book, PaperState
from engine.report import render_table
from engine.report.charts import equity_chart


def default_state(output_dir: Path) -> Path:
    """``runs/btc`` -> ``runs/btc_paper/state.sqlite`` (outside the backtest's directory,
    which a backtest replaces as a whole)."""
    return output_dir.with_name(f"{output_dir.name}_paper") / "state.sqlite"


def cmd_run(args: argparse.Namespace) -> int:
    from engine.paper.orders import SandboxOrders
    from engine.paper.trader import PaperTrader

    cfg = load_config(args.config)
    path = Path(args.state) if args.state else default_state(Path(cfg.output_dir))
    state = PaperState.open(path)
    try:
        orders = SandboxOrders(cfg.data, cfg.data.retries, cfg.data.retry_backoff_s) \
            if args.sandbox else None
        trader = PaperTrader(cfg, state, orders=orders, progress=not args.no_progress)
        if args.once:
            processed = trader.run_once()
            meta = state.meta()
            print(f"processed {processed} candle(s); last {meta.get('last_processed')}; "
                  f"state {path}")
        else:
            print(f"paper trading {trader.spec.name} on {', '.join(cfg.traded_symbols)}; "
                  f"state {path}; Ctrl-C to stop", flush=True)
            trader.run_forever()
    finally:
        state.close()
    return 0


def buy_and_hold(candles: pd.DataFrame, symbol: str, broker: BrokerConfig) -> pd.Series:
    """Equity of buying at the open after the first processed candle, filled by the paper
    broker exactly as the backtest's BuyAndHold would be."""
    book = Book(symbol, broker.cash)
    if len(candles) > 1:
        bar = candles.iloc[1]
        paper_broker.execute(book, 1.0, bar["open"], broker, "", "", bar["high"], bar["low"])
    values = book.cash + book.position * candles["close"]
    values.iloc[0] = broker.cash
    return values


def status_text(state: PaperState) -> tuple[str, dict[str, dict[str, pd.Series]]]:
    """The status report and the equity curves (paper and buy-and-hold) per symbol."""
    meta = state.meta()
    if "last_processed" not in meta:
        raise StateError(f"{state.path}: no candle processed yet; run python -m engine.paper "
                         "run CONFIG --state PATH first")
    candles = state.table("candles")
    candles.index = pd.DatetimeIndex(pd.to_datetime(candles.pop("time"), utc=True))
    books, broker = state.books(), BrokerConfig(**meta["broker"])
    cash = broker.cash
    rows, curves, hold_total = [], {}, 0.0
    for symbol, book in books.items():
        mine = candles[candles["symbol"] == symbol]
        close = float(mine["close"].iloc[-1])
        hold = buy_and_hold(mine, symbol, broker)
        equity = paper_broker.equity(book, close)
        hold_total += float(hold.iloc[-1])
        curves[symbol] = {f"paper: {meta['strategy']}": mine["equity"], "buy_and_hold": hold}
        rows.append({"symbol": symbol, "position": book.position, "entry_price": book.entry_price,
                     "last_close": close, "equity": equity, "realized": book.realized,
                     "unrealized": paper_broker.unrealized(book, close), "fees_paid": book.fees,
                     "total_return": equity / cash - 1,
                     "buy_and_hold_return": hold.iloc[-1] / cash - 1})
    table = pd.DataFrame(rows)
    total, start_total = table["equity"].sum(), cash * len(books)
    lines = [f"Paper trading {meta['strategy']} (fill at {meta['fill']}) since "
             f"{meta['start'][:16]} UTC; last candle {meta['last_processed'][:16]} UTC; "
             f"model fold {meta.get('model_fold')}",
             "", render_table(table), "",
             f"Total equity {total:,.2f} from {start_total:,.2f}: {total / start_total - 1:+.2%}"
             f" (buy-and-hold {hold_total / start_total - 1:+.2%})"]
    orders = state.open_orders()
    lines.append("Open orders: " + (", ".join(
        f"{s} {'close the position' if t == 0 else f'to {t:+g} x equity'} at the next open "
        f"(decided {d[:16]})" for s, (t, d) in orders.items()) or "none"))
    fills = state.table("fills").tail(10)
    if not fills.empty:
        lines += ["", "Recent fills:", render_table(
            fills[["time", "symbol", "side", "size", "price", "commission"]])]
    return "\n".join(lines), curves


def cmd_status(args: argparse.Namespace) -> int:
    path = Path(args.state)
    if not path.is_file():
        raise StateError(f"{path}: no such state file; pass the --state used with "
                         "python -m engine.paper run")
    state = PaperState.open(path)
    try:
        text, curves = status_text(state)
    finally:
        state.close()
    chart = Path(args.output) if args.output else path.with_name(f"{path.stem}_equity.png")
    equity_chart(curves, chart, title="Paper equity")
    print(text)
    print(f"\nEquity chart: {chart}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.paper",
                                     description="Paper-trade a configured strategy.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="process closed candles (and keep waiting for more)")
    run.add_argument("config", help="YAML config file, e.g. configs/btc.yaml")
    run.add_argument("--state", help="SQLite state file (default: <output_dir>_paper/"
                                     "state.sqlite)")
    run.add_argument("--once", action="store_true", help="process pending candles and exit")
    run.add_argument("--sandbox", action="store_true",
                     help="also send each fill to the exchange's testnet (keys from "
                          "ENGINE_API_KEY / ENGINE_API_SECRET)")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    status = sub.add_parser("status", help="show the paper account and write its chart")
    status.add_argument("--state", required=True, help="SQLite state file")
    status.add_argument("--output", help="equity PNG (default: beside the state file)")
    args = parser.parse_args(argv)
    return cmd_run(args) if args.command == "run" else cmd_status(args)


if __name__ == "__main__":
    sys.exit(run_cli(main, None))
