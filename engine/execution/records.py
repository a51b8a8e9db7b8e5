"""What the execution core records: fills, round trips, and a strategy's whole run.

``Fill`` and ``RoundTrip`` are made by ``Account`` (and by the sweep kernel's results) and
travel unchanged through the drivers into the paper state, the report and the sweep;
``StrategyRun`` is one (strategy, account) run of a backtest or a sweep trial.

Times are what the driver handed the account: UTC timestamps in a backtest's results,
ISO text in paper trading.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import pandas as pd

PORTFOLIO = "portfolio"  # the symbol of a run whose symbols share one account
#: The column of a perpetual future's frame holding its funding rate summed over each bar
#: (``engine.data.funding``); the drivers pay it through ``Account.fund``.
FUNDING = "funding_rate"


@dataclass(frozen=True)
class Fill:
    """One fill of the account."""

    time: Any  # the bar whose open (or the ticker moment) it filled at
    symbol: str
    side: str  # "buy" or "sell"
    size: float  # units, > 0
    price: float  # fill price, slippage included
    fee: float  # commission, in the quote currency
    value: float  # size x price
    decided_at: Any  # the bar at whose close it was decided


@dataclass(frozen=True)
class RoundTrip:
    """A position from its first fill to the fill that closed it (or to the last close)."""

    symbol: str
    side: str  # "long" or "short"
    size: float  # units, > 0
    entry_time: Any  # time of the round trip's first fill
    exit_time: Any  # time of the closing fill; None while open at the end
    entry_price: float  # average fill price of the position
    exit_price: float  # closing fill's price (the last close when open at the end)
    pnl: float  # after every fee, quote currency
    fees: float  # entry and exit fees charged to it
    return_: float | None  # pnl / entry value
    bars_held: int | None  # bars from the entry fill to the exit fill (or the last bar)
    open_at_end: bool  # still open after the last bar, marked at the last close

    def row(self) -> dict[str, Any]:
        """The record as a table row (``return_`` named ``return``)."""
        data = asdict(self)
        data["return"] = data.pop("return_")
        return data


FILL_FIELDS = [f.name for f in fields(Fill)]
TRADE_FIELDS = [f.name if f.name != "return_" else "return" for f in fields(RoundTrip)]


@dataclass
class StrategyRun:
    """Everything one (strategy, symbol) or portfolio run produced, from the first traded bar.

    Times of ``fills`` and ``trades`` are UTC timestamps.
    """

    label: str
    symbol: str  # the traded symbol, or PORTFOLIO
    equity: pd.Series  # account equity at each bar's close, UTC index
    position: pd.DataFrame  # units held of each symbol at each close
    fills: list[Fill] = field(default_factory=list)
    trades: list[RoundTrip] = field(default_factory=list)
    fees: float = 0.0
    pending: tuple[dict[str, float], bool] | None = None  # decided at the last bar, unfilled
    contributions: dict[str, dict[str, float]] = field(default_factory=dict)  # per symbol
    borrow: float = 0.0  # borrow interest paid
    funding: float = 0.0  # perpetual funding paid (negative: received)

    @property
    def symbols(self) -> list[str]:
        return list(self.position.columns)

    def fill_table(self) -> pd.DataFrame:
        """The fills as a DataFrame with the columns of ``Fill``."""
        return fill_table(self.fills)


def fill_table(fills: Iterable[Fill]) -> pd.DataFrame:
    """Fill records as a DataFrame, one column per field of ``Fill``."""
    return pd.DataFrame([asdict(f) for f in fills], columns=FILL_FIELDS)


def utc(value: Any) -> Any:
    """A driver's naive UTC datetime as a UTC timestamp (anything else unchanged)."""
    if isinstance(value, dt.datetime) and not isinstance(value, pd.Timestamp):
        return pd.Timestamp(value, tz="UTC")
    return value


def in_utc(fills: Iterable[Fill], trades: Iterable[RoundTrip]) -> tuple[list[Fill],
                                                                       list[RoundTrip]]:
    """Fills and round trips with their times as UTC timestamps (``utc``)."""
    return ([replace(f, time=utc(f.time), decided_at=utc(f.decided_at)) for f in fills],
            [replace(t, entry_time=utc(t.entry_time), exit_time=utc(t.exit_time))
             for t in trades])
