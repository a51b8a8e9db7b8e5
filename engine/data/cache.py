"""On-disk candle cache: one Parquet file per (exchange, symbol, timeframe).

Each file records, besides the candles, the time span it is known to cover completely
(``covered_from`` .. ``covered_until``, epoch ms, end exclusive), so that a second run over
the same range asks the exchange for nothing and a later end date fetches only the tail.
Files are replaced atomically (temporary file + fsync + rename): a crash or a failed
download never leaves a half-written or emptied cache behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import DataError

COLUMNS = ["open", "high", "low", "close", "volume"]
_META_KEY = b"engine.cache"


@dataclass(frozen=True)
class CachedCandles:
    """Candles read from the cache and the span they cover completely."""

    frame: pd.DataFrame
    covered_from: int
    covered_until: int


class CandleCache:
    """Reads and atomically writes cached candles under ``root/<exchange>/``.

    Args:
        root: The cache directory (``data.cache_dir``).
        exchange_id: The ccxt exchange id; each exchange gets a sub-directory.
    """

    def __init__(self, root: str | Path, exchange_id: str, columns: list[str] | None = None):
        self.dir = Path(root).expanduser() / exchange_id
        self.columns = columns or COLUMNS  # funding rates are cached alike, as ["rate"]

    def path(self, symbol: str, timeframe: str) -> Path:
        """The cache file for one market, e.g. ``cache/binance/BTC-USDT_1d.parquet``."""
        safe = symbol.replace("/", "-").replace(":", "_")
        return self.dir / f"{safe}_{timeframe}.parquet"

    def read(self, symbol: str, timeframe: str) -> CachedCandles | None:
        """The cached candles, or None when nothing is cached yet.

        Raises:
            DataError: The file exists but cannot be read; the message says to delete it.
        """
        path = self.path(symbol, timeframe)
        if not path.exists():
            return None
        try:
            table = pq.read_table(path)
            meta = json.loads(table.schema.metadata[_META_KEY])
            frame = table.to_pandas()
        except Exception as exc:  # any decoding failure means the same thing to the user
            raise DataError(f"cache file {path} is unreadable ({type(exc).__name__}); "
                            "delete it to download the candles again") from exc
        frame.index = pd.DatetimeIndex(frame.index, tz="UTC", name="timestamp").as_unit("ns")
        return CachedCandles(frame[self.columns], int(meta["covered_from"]),
                             int(meta["covered_until"]))

    def write(self, symbol: str, timeframe: str, candles: CachedCandles) -> Path:
        """Replace the cache file atomically with ``candles``."""
        path = self.path(symbol, timeframe)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"symbol": symbol, "timeframe": timeframe,
                "covered_from": candles.covered_from, "covered_until": candles.covered_until}
        table = pa.Table.from_pandas(candles.frame[self.columns], preserve_index=True)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               _META_KEY: json.dumps(meta).encode()})
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                pq.write_table(table, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def rows_to_frame(rows: list[list]) -> pd.DataFrame:
    """ccxt OHLCV rows ``[ms, o, h, l, c, v]`` -> a float frame on a UTC DatetimeIndex."""
    frame = pd.DataFrame([row[:6] for row in rows], columns=["timestamp", *COLUMNS])
    stamps = pd.to_datetime(frame.pop("timestamp").astype("int64"), unit="ms", utc=True)
    frame.index = pd.DatetimeIndex(stamps, name="timestamp").as_unit("ns")
    return frame.astype("float64")
