"""``python -m engine.paper run CONFIG`` and ``python -m engine.paper status --state PATH``.

run     process every closed candle not processed yet, then keep waiting for new ones
        (``--once``: process what is pending and exit, for cron). ``--sandbox`` also sends
        each fill as a market order to the exchange's testnet, with keys taken from the
        environment; without it nothing is ever sent. Real-money trading is refused.
status  equity, positions, realised and unrealised P&L, P&L against buy-and-hold since
        the start, open orders and recent fills; writes the paper equity curve as a PNG.
restore put back the last good copy of a damaged state (``<state>.bak``), keeping the
        damaged files beside it as ``<state>.damaged-<time>``.

Both ``run`` and ``status`` check the state when they open it (see ``engine.paper.state``)
and refuse a damaged one with a one-line error that says how to recover.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sqlite3
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from engine.cli import run_cli
from engine.config import BrokerConfig, load_config
from engine.errors import StateError
from engine.execution import Account, Bar, make_account, restore_account
from engine.paper.locking import acquire_lock, release_lock
from engine.paper.orders import SandboxOrders
from engine.paper.state import PaperState, backup_path, check
from engine.paper.trader import PaperTrader
from engine.report import render_table
from engine.report.charts import equity_chart
from strategies.registry import check_config


def default_state(output_dir: Path) -> Path:
    """``runs/btc`` -> ``runs/btc_paper/state.sqlite`` (outside the backtest's directory,
    which a backtest replaces as a whole)."""
    return output_dir.with_name(f"{output_dir.name}_paper") / "state.sqlite"


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    check_config(cfg)  # the strategies, before the state is opened or data read
    path = Path(args.state) if args.state else default_state(Path(cfg.output_dir))
    state = PaperState.open(path)
    try:
        check_model_file(state)
        orders = SandboxOrders(cfg.data, cfg.data.retries, cfg.data.retry_backoff_s) \
            if args.sandbox else None
        trader = PaperTrader(cfg, state, orders=orders, progress=not args.no_progress)
        if args.once:
            processed = trader.run_once()
            meta = state.meta()
            print(f"processed {processed} candle(s); last {meta.get('last_processed')}; "
                  f"state {path}")
        else:
            made = "" if state.on_disk else " (written once the first candle is processed)"
            print(f"paper trading {trader.spec.name} on {', '.join(cfg.traded_symbols)}; "
                  f"state {path}{made}; Ctrl-C to stop", flush=True)
            trader.run_forever()
    finally:
        state.close()
    return 0


def check_model_file(state: PaperState) -> None:
    """Refuse a state whose current fold model is missing or not a whole ``.keras`` file.

    A ``.keras`` file is a zip archive: reading its directory and checksums finds a
    truncated or overwritten file without loading Keras.

    Raises:
        StateError: Naming the model file and how to recover.
    """
    model_file = state.meta().get("model_file")
    if not model_file:
        return
    path = state.path.parent / model_file
    fix = "put back a good copy of it, or start a new --state file"
    if not path.is_file():
        raise StateError(f"{path}: the model of the state's current fold is missing; {fix}")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        bad = str(exc)
    if bad is not None:
        raise StateError(f"{path}: the model of the state's current fold is damaged (not a "
                         f"whole .keras file: {bad}); {fix}")


def buy_and_hold(candles: pd.DataFrame, broker: BrokerConfig,
                 timeframe: str | None = None) -> pd.Series:
    """Equity of buying every symbol of one account in equal weights at the open after the
    first processed candle, filled by the execution core as the backtest's BuyAndHold is.

    Args:
        candles: That account's rows of the ``candles`` table, indexed by time.
        broker: The broker settings the state was made with.
        timeframe: The state's candle timeframe (needed with ``broker.borrow_rate``).
    """
    account = make_account(broker, timeframe)
    closes = candles.pivot(columns="symbol", values="close")
    times = closes.index
    if len(times) > 1:
        bar = candles[candles.index == times[1]].set_index("symbol")
        account.rebalance({s: 1.0 / closes.shape[1] for s in closes},
                          {s: Bar(r["open"], r["high"], r["low"]) for s, r in bar.iterrows()},
                          times[1].isoformat())
    values = pd.Series([account.equity(row) for row in closes.to_dict("records")], times)
    values.iloc[0] = broker.cash
    return values


def _position_rows(name: str, account: Account, candles: pd.DataFrame,
                   trades: pd.DataFrame) -> list[dict]:
    """One status row per symbol of an account."""
    rows = []
    for symbol, mine in candles.groupby("symbol", sort=False):
        close = float(mine["close"].iloc[-1])
        held = account.positions.get(symbol)
        realized = float(trades.loc[trades["symbol"] == symbol, "pnl"].sum())
        rows.append({"account": name, "symbol": symbol, "position": account.size(symbol),
                     "entry_price": held.entry_price if held else None, "last_close": close,
                     "realized": realized,
                     "unrealized": account.contribution(symbol, close) - realized,
                     "fees_paid": account.fees_by_symbol.get(symbol, 0.0),
                     "borrow_paid": account.borrow_by_symbol.get(symbol, 0.0),
                     "funding_paid": account.funding_by_symbol.get(symbol, 0.0)})
    return rows


def _order_words(target: float) -> str:
    return "close the position" if target == 0 else f"to {target:+g} x equity"


def status_text(state: PaperState) -> tuple[str, dict[str, dict[str, pd.Series]]]:
    """The status report and the equity curves (paper and buy-and-hold) per account."""
    meta = state.meta()
    if "last_processed" not in meta:
        raise StateError(f"{state.path}: no candle processed yet; run python -m engine.paper "
                         "run CONFIG --state PATH first")
    candles = state.table("candles")
    candles.index = pd.DatetimeIndex(pd.to_datetime(candles.pop("time"), utc=True))
    trades, broker = state.table("trades"), BrokerConfig(**meta["broker"])
    timeframe = meta["config"]["data"]["timeframe"]
    rows, summary, curves = [], [], {}
    for name, data in state.accounts().items():
        account = restore_account(data, broker, timeframe)
        mine = candles[candles["account"] == name]
        equity = mine.groupby(level=0)["equity"].first()
        hold = buy_and_hold(mine, broker, timeframe)
        curves[name] = {f"paper: {meta['strategy']}": equity, "buy_and_hold": hold}
        rows += _position_rows(name, account, mine, trades[trades["account"] == name])
        summary.append({"account": name, "equity": float(equity.iloc[-1]),
                        "fees_paid": account.fees, "borrow_paid": account.borrow,
                        "funding_paid": account.funding,
                        "total_return": float(equity.iloc[-1]) / broker.cash - 1,
                        "buy_and_hold_return": float(hold.iloc[-1]) / broker.cash - 1})
    total = sum(r["equity"] for r in summary)
    hold_total = sum((1 + r["buy_and_hold_return"]) * broker.cash for r in summary)
    start_total = broker.cash * len(summary)
    lines = [f"Paper trading {meta['strategy']} (fill at {meta['fill']}) since "
             f"{meta['start'][:16]} UTC; last candle {meta['last_processed'][:16]} UTC; "
             f"model fold {meta.get('model_fold')}",
             "", render_table(pd.DataFrame(summary)), "", render_table(pd.DataFrame(rows)), "",
             f"Total equity {total:,.2f} from {start_total:,.2f}: {total / start_total - 1:+.2%}"
             f" (buy-and-hold {hold_total / start_total - 1:+.2%})"]
    orders = state.open_orders()
    lines.append("Open orders: " + (", ".join(
        f"{o['symbol']} {_order_words(o['target'])} at the next open (decided "
        f"{o['decided_at'][:16]})" for o in orders) or "none"))
    fills = state.table("fills").tail(10)
    if not fills.empty:
        lines += ["", "Recent fills:", render_table(
            fills[["time", "symbol", "side", "size", "price", "commission"]])]
    return "\n".join(lines), curves


def cmd_status(args: argparse.Namespace) -> int:
    path = Path(args.state)
    state = PaperState.open(path, exclusive=False)
    try:
        check_model_file(state)
        text, curves = status_text(state)
    finally:
        state.close()
    chart = Path(args.output) if args.output else path.with_name(f"{path.stem}_equity.png")
    equity_chart(curves, chart, title="Paper equity")
    print(text)
    print(f"\nEquity chart: {chart}")
    return 0


def restore(path: Path) -> str:
    """Replace the state at ``path`` by its last good backup; returns what was done.

    The damaged database and its WAL files are kept, renamed, beside it: SQLite would
    otherwise replay the old WAL file into the restored database.

    Raises:
        StateError: A run holds the state, or there is no sound backup.
    """
    lock = acquire_lock(path)
    try:
        backup = next((p for p in (backup_path(path), backup_path(path).with_name(
            f"{backup_path(path).name}.1")) if p.is_file() and _sound(p)), None)
        if backup is None:
            raise StateError(f"{path}: no sound backup ({backup_path(path)} or .bak.1) to "
                             "restore; start a new --state file")
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        kept = path.with_name(f"{path.name}.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            old = path.with_name(path.name + suffix)
            if old.exists():
                os.replace(old, kept.with_name(kept.name + suffix))
        tmp = path.with_name(f"{path.name}.restoring")
        shutil.copyfile(backup, tmp)
        os.replace(tmp, path)
    finally:
        release_lock(lock)
    return (f"restored {path} from {backup}; the damaged file is kept as {kept}; the next "
            "run processes again the candles that closed after the backup")


def _sound(path: Path) -> bool:
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True) as conn:
            return check(conn) is None
    except sqlite3.DatabaseError:
        return False


def cmd_restore(args: argparse.Namespace) -> int:
    print(restore(Path(args.state)))
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
    restore_cmd = sub.add_parser("restore", help="put back the last good copy of a damaged "
                                                 "state")
    restore_cmd.add_argument("--state", required=True, help="SQLite state file")
    args = parser.parse_args(argv)
    return {"run": cmd_run, "status": cmd_status, "restore": cmd_restore}[args.command](args)


if __name__ == "__main__":
    sys.exit(run_cli(main, None))
