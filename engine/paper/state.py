"""Paper-trading state in SQLite, changed in exactly one transaction per candle.

Tables: ``meta`` (config fingerprint, strategy, start, last processed candle, model fold
and file), ``accounts`` (each trading account of the execution core as JSON: one per
traded symbol, or one ``portfolio`` account), ``open_orders`` (target weights to fill at
the next candle's open), ``fills``, ``trades`` (closed round trips), ``candles`` (prices,
position and the account's cash and equity after each processed candle) and ``forecasts``.
SQLite's journal makes each commit all-or-nothing: a ``kill -9`` at any moment loses at
most the candle being processed, which the next run processes again; no candle is ever
applied twice.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import StateError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (name TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS open_orders (
    account TEXT NOT NULL, symbol TEXT NOT NULL, target REAL NOT NULL,
    resize INTEGER NOT NULL, decided_at TEXT NOT NULL, PRIMARY KEY (account, symbol));
CREATE TABLE IF NOT EXISTS fills (
    id INTEGER PRIMARY KEY, account TEXT NOT NULL, time TEXT NOT NULL, symbol TEXT NOT NULL,
    side TEXT NOT NULL, size REAL NOT NULL, price REAL NOT NULL, commission REAL NOT NULL,
    value REAL NOT NULL, decided_at TEXT NOT NULL, client_order_id TEXT,
    exchange_order_id TEXT);
CREATE TABLE IF NOT EXISTS trades (
    id INTEGER PRIMARY KEY, account TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    size REAL NOT NULL, entry_time TEXT, exit_time TEXT NOT NULL, entry_price REAL NOT NULL,
    exit_price REAL NOT NULL, pnl REAL NOT NULL, fees REAL NOT NULL, return REAL,
    bars_held INTEGER);
CREATE TABLE IF NOT EXISTS candles (
    time TEXT NOT NULL, symbol TEXT NOT NULL, account TEXT NOT NULL, open REAL NOT NULL,
    high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL, position REAL NOT NULL,
    cash REAL NOT NULL, equity REAL NOT NULL, PRIMARY KEY (time, symbol));
CREATE TABLE IF NOT EXISTS forecasts (
    time TEXT NOT NULL, symbol TEXT NOT NULL, pred_close REAL NOT NULL,
    pred_return REAL NOT NULL, fold INTEGER NOT NULL, PRIMARY KEY (time, symbol));
"""


@dataclass
class CandleUpdate:
    """Everything one processed candle changes; ``PaperState.apply`` commits it at once."""

    time: str
    accounts: dict[str, dict[str, Any]]  # name -> Account.to_dict()
    open_orders: list[dict[str, Any]]  # rows: account, symbol, target, resize, decided_at
    fills: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    candles: list[dict[str, Any]] = field(default_factory=list)
    forecasts: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


class PaperState:
    """One state file. Open it with ``PaperState.open``; close it when done."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self.conn = conn

    @classmethod
    def open(cls, path: str | Path) -> PaperState:
        """Open (or create) a state file.

        Raises:
            StateError: The file is not a SQLite database of this engine.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{path}: not a paper-trading state file ({exc}); pass another "
                             "--state path") from None
        return cls(path, conn)

    def close(self) -> None:
        self.conn.close()

    # --- meta ---------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM meta")}

    def initialise(self, meta: dict[str, Any], accounts: dict[str, dict[str, Any]]) -> None:
        """Write the first meta data and the new accounts in one transaction."""
        with self._transaction():
            self._put_meta(meta)
            self._put_accounts(accounts)

    # --- reads --------------------------------------------------------------------------

    def accounts(self) -> dict[str, dict[str, Any]]:
        """Each account's ``Account.to_dict()``, by name."""
        rows = self.conn.execute("SELECT name, state FROM accounts ORDER BY rowid")
        return {name: json.loads(state) for name, state in rows}

    def open_orders(self) -> list[dict[str, Any]]:
        """Target weights waiting for the next open: account, symbol, target, resize,
        decided_at."""
        return self.table("open_orders").to_dict("records")

    def recent_forecasts(self, since: str) -> pd.DataFrame:
        """The forecasts made at candles from ``since`` (ISO time) on."""
        return pd.read_sql_query("SELECT * FROM forecasts WHERE time >= ? ORDER BY rowid",
                                 self.conn, params=(since,))

    def table(self, name: str) -> pd.DataFrame:
        """A whole table (fills, trades, candles, forecasts) as a DataFrame."""
        if name not in ("fills", "trades", "candles", "forecasts", "open_orders"):
            raise ValueError(name)
        return pd.read_sql_query(f"SELECT * FROM {name} ORDER BY rowid", self.conn)

    # --- the one write path -------------------------------------------------------------

    def apply(self, update: CandleUpdate, expected_last: str | None) -> None:
        """Commit one candle's changes, all or nothing, and mark it processed.

        Raises:
            StateError: Another process processed a candle meanwhile (``expected_last`` is
                no longer the last processed candle); nothing is written.
        """
        with self._transaction():
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'last_processed'")
            found = row.fetchone()
            if (json.loads(found[0]) if found else None) != expected_last:
                raise StateError(f"{self.path} is being updated by another paper-trading "
                                 "process; run one process per state file")
            self._put_accounts(update.accounts)
            self.conn.execute("DELETE FROM open_orders")
            self._insert("open_orders", update.open_orders)
            self._insert("fills", update.fills)
            self._insert("trades", update.trades)
            self._insert("candles", update.candles)
            self._insert("forecasts", update.forecasts)
            self._put_meta({**update.meta, "last_processed": update.time})

    def unsent_orders(self) -> pd.DataFrame:
        """Fills to mirror on the sandbox whose order is not known to be placed yet."""
        return pd.read_sql_query(
            "SELECT id, symbol, side, size, client_order_id FROM fills WHERE client_order_id "
            "IS NOT NULL AND exchange_order_id IS NULL ORDER BY id", self.conn)

    def set_order_id(self, fill_id: int, order_id: str) -> None:
        """Record the exchange's answer for one mirrored fill (its own transaction)."""
        with self._transaction():
            self.conn.execute("UPDATE fills SET exchange_order_id = ? WHERE id = ?",
                              (order_id, int(fill_id)))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _put_meta(self, meta: dict[str, Any]) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                              [(k, json.dumps(v, default=str)) for k, v in meta.items()])

    def _put_accounts(self, accounts: dict[str, dict[str, Any]]) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO accounts VALUES (?, ?)",
                              [(name, json.dumps(state)) for name, state in accounts.items()])

    def _insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            columns = list(rows[0])
            self.conn.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                [tuple(row[c] for c in columns) for row in rows])
