"""Paper-trading state in SQLite, changed in exactly one transaction per candle.

Tables: ``meta`` (config fingerprint, strategy, start, last processed candle, model fold
and file), ``books`` (cash and position per traded symbol), ``open_orders`` (targets to
fill at the next candle's open), ``fills``, ``trades`` (closed round trips), ``candles``
(equity and prices after each processed candle) and ``forecasts``. SQLite's journal
makes each commit all-or-nothing: a ``kill -9`` at any moment loses at most the candle
being processed, which the next run processes again; no candle is ever applied twice.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import StateError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS books (
    symbol TEXT PRIMARY KEY, cash REAL NOT NULL, position REAL NOT NULL,
    entry_price REAL NOT NULL, entry_fees REAL NOT NULL, fees REAL NOT NULL,
    realized REAL NOT NULL, opened_at TEXT);
CREATE TABLE IF NOT EXISTS open_orders (
    symbol TEXT PRIMARY KEY, target REAL NOT NULL, decided_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fills (
    id INTEGER PRIMARY KEY, time TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    size REAL NOT NULL, price REAL NOT NULL, commission REAL NOT NULL, value REAL NOT NULL,
    decided_at TEXT NOT NULL, client_order_id TEXT, exchange_order_id TEXT);
CREATE TABLE IF NOT EXISTS trades (
    id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, opened_at TEXT, closed_at TEXT NOT NULL,
    side TEXT NOT NULL, size REAL NOT NULL, entry_price REAL NOT NULL, exit_price REAL NOT NULL,
    pnl REAL NOT NULL);
CREATE TABLE IF NOT EXISTS candles (
    time TEXT NOT NULL, symbol TEXT NOT NULL, open REAL NOT NULL, high REAL NOT NULL,
    low REAL NOT NULL, close REAL NOT NULL, position REAL NOT NULL, cash REAL NOT NULL,
    equity REAL NOT NULL, PRIMARY KEY (time, symbol));
CREATE TABLE IF NOT EXISTS forecasts (
    time TEXT NOT NULL, symbol TEXT NOT NULL, pred_close REAL NOT NULL,
    pred_return REAL NOT NULL, fold INTEGER NOT NULL, PRIMARY KEY (time, symbol));
"""


@dataclass
class Book:
    """Cash and position of one traded symbol."""

    symbol: str
    cash: float
    position: float = 0.0
    entry_price: float = 0.0  # average price of the open position
    entry_fees: float = 0.0  # fees paid opening it (charged to the round trip)
    fees: float = 0.0  # all fees paid
    realized: float = 0.0  # P&L of closed round trips, after fees
    opened_at: str | None = None


@dataclass
class CandleUpdate:
    """Everything one processed candle changes; ``PaperState.apply`` commits it at once."""

    time: str
    books: dict[str, Book]
    open_orders: dict[str, tuple[float, str]]  # symbol -> (target, decided_at)
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

    def initialise(self, meta: dict[str, Any], books: Iterable[Book]) -> None:
        """Write the first meta data and empty books in one transaction."""
        with self._transaction():
            self._put_meta(meta)
            for book in books:
                self._put_book(book)

    # --- reads --------------------------------------------------------------------------

    def books(self) -> dict[str, Book]:
        rows = self.conn.execute("SELECT symbol, cash, position, entry_price, entry_fees, fees, "
                                 "realized, opened_at FROM books")
        return {row[0]: Book(*row) for row in rows}

    def open_orders(self) -> dict[str, tuple[float, str]]:
        rows = self.conn.execute("SELECT symbol, target, decided_at FROM open_orders")
        return {symbol: (target, decided) for symbol, target, decided in rows}

    def table(self, name: str) -> pd.DataFrame:
        """A whole table (fills, trades, candles, forecasts) as a DataFrame."""
        if name not in ("fills", "trades", "candles", "forecasts"):
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
            for book in update.books.values():
                self._put_book(book)
            self.conn.execute("DELETE FROM open_orders")
            self.conn.executemany(
                "INSERT INTO open_orders VALUES (?, ?, ?)",
                [(s, target, decided) for s, (target, decided) in update.open_orders.items()])
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

    def _put_book(self, book: Book) -> None:
        values = asdict(book)
        self.conn.execute(f"INSERT OR REPLACE INTO books ({', '.join(values)}) "
                          f"VALUES ({', '.join('?' * len(values))})", tuple(values.values()))

    def _insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            columns = list(rows[0])
            self.conn.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                [tuple(row[c] for c in columns) for row in rows])
