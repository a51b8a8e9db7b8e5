"""Replay a recorded series of target weights: the bridge from the RL environment.

The CSV has columns ``time,target`` (one traded symbol) or ``time,symbol,target`` (several);
``time`` is the bar whose close decides the target (ISO, UTC), ``target`` the weight of
equity (1 = all long, -1 = all short, 0 = flat). At the close of each listed bar the
strategy decides that target; unlisted bars keep the position. A target different from the
previous decision is traded to exactly (``resize``); a repeated one keeps the position,
which is the RL environment's rule too, so an episode's recorded targets replayed here give
the episode's equity curve. One time (per symbol) given two different targets is an error,
and in a backtest so is a time that is not a bar of the data (it would never be traded);
both messages name the file's line.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import backtrader as bt
import pandas as pd

from engine.errors import ConfigError, InvalidKey
from strategies.base import TargetStrategy


def read_targets(path: str | Path) -> pd.DataFrame:
    """The targets of a replay CSV as a frame: UTC index ``time``, one column per symbol
    (``target`` when the CSV has no symbol column).

    Raises:
        ConfigError: The file is missing or malformed, or gives one time (and symbol) two
            different targets (the message names the lines).
    """
    return _table(_read_rows(path))


def _read_rows(path: str | Path) -> pd.DataFrame:
    """The CSV's rows with their ``line`` in the file; repeated identical rows once."""
    try:
        raw = pd.read_csv(path)  # pandas reads floats back exactly (round trip)
    except FileNotFoundError:
        raise ConfigError(f"replay: no such targets file {path}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"replay: cannot read {path} as CSV ({exc})") from None
    missing = {"time", "target"} - set(raw.columns)
    if missing:
        raise ConfigError(f"replay: {path} lacks the column(s) {', '.join(sorted(missing))}; "
                          "write time,target (or time,symbol,target)")
    try:
        raw["time"] = pd.to_datetime(raw["time"], utc=True, format="ISO8601")
        raw["target"] = pd.to_numeric(raw["target"])
    except (TypeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"replay: {path} has an unreadable time or target ({first}); write "
                          "ISO times such as 2021-03-01T00:00:00+00:00 and numbers") from None
    if not raw["target"].map(math.isfinite).all():
        raise ConfigError(f"replay: {path} has a non-finite target; targets are weights of "
                          "equity such as 1, 0 or -0.5")
    raw["line"] = raw.index + 2  # the header is line 1
    keys = ["time", "symbol"] if "symbol" in raw.columns else ["time"]
    for _, rows in raw[raw.duplicated(keys, keep=False)].groupby(keys, sort=False):
        if rows["target"].nunique() > 1:
            a, b = rows.iloc[0], rows[rows["target"] != rows["target"].iloc[0]].iloc[0]
            what = f" for {a['symbol']}" if "symbol" in keys else ""
            raise ConfigError(f"replay: {path} lines {a['line']} and {b['line']} give two "
                              f"targets{what} at {a['time'].isoformat()} ({a['target']:g} and "
                              f"{b['target']:g}); keep one of them")
    return raw.drop_duplicates(keys)


def _table(raw: pd.DataFrame) -> pd.DataFrame:
    if "symbol" not in raw.columns:
        return raw.set_index("time")[["target"]]
    return raw.pivot_table(index="time", columns="symbol", values="target", aggfunc="last")


def check_bars(path: str | Path, raw: pd.DataFrame, index: pd.DatetimeIndex) -> None:
    """Every time of the targets file is the time of a bar of the data.

    Raises:
        ConfigError: The first row whose time is no bar (a time of day the bars do not
            have, a time zone slip, a date outside the data), naming the line and time.
    """
    times = pd.DatetimeIndex(raw["time"])
    foreign = ~times.isin(index)
    if foreign.any():
        row = raw[foreign].iloc[0]
        raise ConfigError(f"replay: {path} line {row['line']}: {row['time'].isoformat()} is "
                          f"not the time of a bar of the data ({len(index)} bars, "
                          f"{index[0].isoformat()} .. {index[-1].isoformat()}); list the "
                          "times of the bars whose close decides each target")


class Replay(TargetStrategy):
    """Decide recorded target weights at the close of each listed bar.

    Params:
        path: CSV with columns time,target (or time,symbol,target). Required.
    """

    name = "replay"
    params = (("path", ""), ("decisions", None))

    def __init__(self):
        table = self.p.decisions if self.p.decisions is not None else self._load()
        names = [d._name for d in self.datas]
        self._targets = _by_bar(table, names)
        self._last: dict[str, float] | None = None

    def _load(self) -> pd.DataFrame:
        if not self.p.path:
            raise ConfigError(f"{self.name}: no targets to replay; set params.path to a "
                              "CSV of time,target")
        return read_targets(self.p.path)

    def decide(self) -> tuple[dict[str, float], bool] | None:
        targets = self._targets.get(self.data.datetime[0])
        if targets is None:
            return None
        resize = targets != self._last
        self._last = targets
        return dict(targets), resize

    @classmethod
    def prepare(cls, params: dict, context: Any) -> dict:
        """Read the targets file once for the run and check that its times are bars of
        the run's data (a target at any other time would never be traded)."""
        path = params.get("path")
        if not path:
            return params
        raw = _read_rows(path)
        check_bars(path, raw, context.market.index)
        return {**params, "decisions": _table(raw)}

    @classmethod
    def check_params(cls, params: dict) -> None:
        if cls is Replay and not params.get("path"):
            raise InvalidKey(("path",), params.get("path"), "must name a CSV of time,target")


def _by_bar(table: pd.DataFrame, names: list[str]) -> dict[float, dict[str, float]]:
    """Targets keyed by backtrader's date number of each decision bar."""
    if list(table.columns) == ["target"]:
        if len(names) != 1:
            raise ConfigError("replay: the targets file has no symbol column but the account "
                              f"trades {', '.join(names)}; write time,symbol,target")
        table = table.rename(columns={"target": names[0]})
    unknown = [s for s in table.columns if s not in names]
    if unknown:
        raise ConfigError(f"replay: the targets name {unknown[0]}, which this account does not "
                          f"trade (traded: {', '.join(names)})")
    index = pd.DatetimeIndex(table.index).tz_convert("UTC").tz_localize(None)
    out = {}
    for when, row in zip(index.to_pydatetime(), table.itertuples(index=False), strict=True):
        out[bt.date2num(when)] = {s: float(w) for s, w in zip(table.columns, row, strict=True)
                                  if not math.isnan(w)}
    return out
