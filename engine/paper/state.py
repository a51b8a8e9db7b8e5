"""Paper-trading state in SQLite, changed in exactly one transaction per candle.

Tables: ``meta`` (config fingerprint, strategy, start, last processed candle, model fold
and file), ``accounts`` (each trading account of the execution core as JSON: one per
traded symbol, or one ``portfolio`` account), ``open_orders`` (target weights to fill at
the next candle's open), ``fills``, ``trades`` (closed round trips), ``candles`` (prices,
position and the account's cash and equity after each processed candle) and ``forecasts``.
SQLite's journal makes each commit all-or-nothing: a ``kill -9`` at any moment loses at
most the candle being processed, which the next run processes again; no candle is ever
applied twice.

Opening a state checks it before anything is written: SQLite's ``quick_check``, every
table and column of ``_SCHEMA`` present, every meta value readable JSON. A trading run
also holds an OS lock on ``<state>.lock`` for its whole life (one process per state) and
keeps the last good copy in ``<state>.bak`` (the one before in ``<state>.bak.1``), made
with SQLite's online backup API when the checks pass at open, at most hourly while it
runs, and when it closes the state.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import StateError
from engine.execution import Fill, RoundTrip
from engine.paper.locking import acquire_lock, first_missing, fsync, give_up, release_lock

log = logging.getLogger(__name__)
BACKUP_EVERY_S = 3600.0  # a long-running trader refreshes its backup at most this often

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


@dataclass(frozen=True)
class AccountFill:
    """A fill of one paper account, and the client order id of its sandbox order (if any)."""

    account: str
    fill: Fill
    client_order_id: str | None = None

    def row(self) -> dict[str, Any]:
        """The row of the ``fills`` table (the fee is its ``commission`` column)."""
        f = self.fill
        return {"account": self.account, "time": f.time, "symbol": f.symbol, "side": f.side,
                "size": f.size, "price": f.price, "commission": f.fee, "value": f.value,
                "decided_at": f.decided_at, "client_order_id": self.client_order_id}


@dataclass(frozen=True)
class AccountTrade:
    """A round trip one paper account closed."""

    account: str
    trade: RoundTrip

    def row(self) -> dict[str, Any]:
        """The row of the ``trades`` table."""
        row = self.trade.row()
        del row["open_at_end"]  # the table holds closed round trips only
        return {**row, "account": self.account}


@dataclass
class CandleUpdate:
    """Everything one processed candle changes; ``PaperState.apply`` commits it at once."""

    time: str
    accounts: dict[str, dict[str, Any]]  # name -> Account.to_dict()
    open_orders: list[dict[str, Any]]  # rows: account, symbol, target, resize, decided_at
    fills: list[AccountFill] = field(default_factory=list)
    trades: list[AccountTrade] = field(default_factory=list)
    candles: list[dict[str, Any]] = field(default_factory=list)
    forecasts: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def expected_schema() -> dict[str, list[str]]:
    """Table -> column names, as ``_SCHEMA`` creates them (so a schema change is followed)."""
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        conn.executescript(_SCHEMA)
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: [row[1] for row in conn.execute(f"PRAGMA table_info({t})")] for t in tables}


def backup_path(path: Path) -> Path:
    """The newest backup of ``path`` (``state.sqlite`` -> ``state.sqlite.bak``)."""
    return path.with_name(f"{path.name}.bak")


def check(conn: sqlite3.Connection) -> str | None:
    """What is wrong with an open state database, or None when it is sound. Writes nothing.

    Raises:
        sqlite3.DatabaseError: The file cannot even be read as a database.
    """
    rows = conn.execute("PRAGMA quick_check").fetchall()
    if rows != [("ok",)]:
        first = " ".join(str(rows[0][0]).split()) if rows else "no answer"
        return f"it fails SQLite's integrity check: {first[:120]}"
    found = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    for table, columns in expected_schema().items():
        if table not in found:
            return f"its table {table} is missing"
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        lacking = [c for c in columns if c not in have]
        if lacking:
            return f"its table {table} lacks the column(s) {', '.join(lacking)}"
    for key, value in conn.execute("SELECT key, value FROM meta"):
        try:
            json.loads(value)
        except (TypeError, ValueError):
            return f"its meta value {key!r} is not JSON ({str(value)[:40]!r})"
    return None


def recovery(path: Path) -> str:
    """How to recover from a damaged state: restore the backup, or start afresh."""
    backup = backup_path(path)
    if backup.is_file():
        saved = dt.datetime.fromtimestamp(backup.stat().st_mtime, dt.timezone.utc)
        return (f"restore the last good copy ({backup}, saved {saved:%Y-%m-%d %H:%M} UTC) with "
                f"python -m engine.paper restore --state {path}, or start a new --state file")
    return "there is no backup of it; start a new --state file"


def damaged(path: Path, what: str) -> StateError:
    """The one-line error for a damaged state file."""
    return StateError(f"{path}: the paper-trading state is damaged ({what}); nothing was "
                      f"written to it; {recovery(path)}")


class PaperState:
    """One state file. Open it with ``PaperState.open``; close it when done.

    A new state lives in memory until its first candle is committed, and is then written
    to ``path`` in one piece: a run that never processes a candle (the exchange cannot be
    reached, a bad config) leaves no file behind, not even its lock file.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, lock: int | None = None,
                 new_dir: Path | None = None):
        self.path = path
        self.conn = conn
        self._lock = lock
        self._backed_up = float("-inf")
        self._in_memory = str(conn.execute("PRAGMA database_list").fetchone()[2]) == ""
        self._new_dir = new_dir  # the folder created for a new state, removed if unused

    @property
    def on_disk(self) -> bool:
        """Whether the state has been written to its file (after the first candle)."""
        return not self._in_memory

    @classmethod
    def open(cls, path: str | Path, exclusive: bool = True) -> PaperState:
        """Open (or create) a state file, checked before anything is written to it.

        Args:
            path: The SQLite file.
            exclusive: For a trading run: hold the lock file for as long as the state is
                open (refusing a second run on the same file) and back up the checked state.
                ``False`` opens an existing state to read it (``status``), beside a run.

        Raises:
            StateError: Another process holds the state; the file is not a state file, or
                is damaged (the message says how to recover); or, with ``exclusive=False``,
                there is no state at ``path``.
        """
        path = Path(path)
        if not exclusive and not path.is_file():
            raise StateError(f"{path}: no such state file; pass the --state used with "
                             "python -m engine.paper run")
        new_dir = first_missing(path.parent)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = acquire_lock(path) if exclusive else None
        try:
            if exclusive and not path.exists():  # new: in memory until its first candle
                conn = sqlite3.connect(":memory:", isolation_level=None)
                conn.executescript(_SCHEMA)
                return cls(path, conn, lock, new_dir)
            conn = _connect(path, create=exclusive)  # (an empty file from an old version)
        except BaseException:
            give_up(path, lock, new_dir)
            raise
        state = cls(path, conn, lock)
        if exclusive and _newer_than_backup(path):
            state.backup()
        return state

    def close(self) -> None:
        """Close the file; a trading run backs up the state it leaves and drops its lock.

        A state that never reached its file leaves nothing: its lock file goes, and so does
        the folder made for it when it is empty.
        """
        try:
            if self._lock is not None and self.on_disk:
                self.backup()
        finally:
            self.conn.close()
            if self.on_disk:
                release_lock(self._lock)
            else:
                give_up(self.path, self._lock, self._new_dir)
            self._lock = None

    def backup(self) -> Path | None:
        """Copy the state to ``<state>.bak`` (the previous one becomes ``.bak.1``).

        SQLite's online backup API copies a consistent snapshot. A state that fails its
        integrity check is never copied over a good backup.
        """
        if not self.on_disk:
            return None  # nothing on disk to lose yet
        target = backup_path(self.path)
        tmp = target.with_name(f"{target.name}.tmp")
        try:
            problem = check(self.conn)
            if problem is None:
                tmp.unlink(missing_ok=True)
                with contextlib.closing(sqlite3.connect(tmp)) as copy:
                    self.conn.backup(copy)
                    copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        except sqlite3.Error as exc:
            problem = f"SQLite: {exc}"
        if problem:
            log.warning("%s: the backup %s was kept as it was: %s", self.path, target, problem)
            return None
        if target.exists():
            os.replace(target, target.with_name(f"{target.name}.1"))
        os.replace(tmp, target)
        self._backed_up = time.monotonic()
        return target

    # --- meta ---------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        """Every meta value (checked as JSON when the state was opened)."""
        meta = {}
        for key, value in self.conn.execute("SELECT key, value FROM meta"):
            try:
                meta[key] = json.loads(value)
            except (TypeError, ValueError):
                raise damaged(self.path, f"its meta value {key!r} is not JSON") from None
        return meta

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
            self._insert("fills", [f.row() for f in update.fills])
            self._insert("trades", [t.row() for t in update.trades])
            self._insert("candles", update.candles)
            self._insert("forecasts", update.forecasts)
            self._put_meta({**update.meta, "last_processed": update.time})
        if not self.on_disk:
            self._write_out()
        if self._lock is not None and time.monotonic() - self._backed_up >= BACKUP_EVERY_S:
            self.backup()

    def _write_out(self) -> None:
        """Write a new state from memory to its file in one piece (temporary file, fsync,
        rename), then go on with the file."""
        tmp = self.path.with_name(f".{self.path.name}.new")
        tmp.unlink(missing_ok=True)  # left by a run killed at this very step
        with contextlib.closing(sqlite3.connect(tmp, isolation_level=None)) as disk:
            self.conn.backup(disk)
            disk.execute("PRAGMA journal_mode=WAL")
        fsync(tmp)
        os.replace(tmp, self.path)
        fsync(self.path.parent)
        self.conn.close()
        self.conn = _connect(self.path, create=False)
        self._in_memory = False

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


def _connect(path: Path, create: bool) -> sqlite3.Connection:
    """Open ``path``, check it, and create the tables only in a new, empty database."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    except sqlite3.Error as exc:
        raise StateError(f"{path}: cannot open the state file ({exc})") from None
    try:
        tables = conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
        if tables == 0 and create:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        problem = check(conn)
        if problem is None:
            conn.execute("PRAGMA synchronous=FULL")
            return conn
    except sqlite3.DatabaseError as exc:
        conn.close()
        if "not a database" in str(exc) and not backup_path(path).is_file():
            raise StateError(f"{path}: not a paper-trading state file ({exc}); pass another "
                             "--state path") from None
        raise damaged(path, f"SQLite: {exc}") from None
    conn.close()
    if tables and "meta" not in _tables(path):
        raise StateError(f"{path}: not a paper-trading state file (a SQLite database without "
                         "its tables); pass another --state path")
    raise damaged(path, problem)


def _newer_than_backup(path: Path) -> bool:
    """Whether the state changed since its last backup (by file times)."""
    backup = backup_path(path)
    if not backup.is_file():
        return True
    files = [p for p in (path, path.with_name(f"{path.name}-wal")) if p.is_file()]
    return max(p.stat().st_mtime for p in files) > backup.stat().st_mtime


def _tables(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
