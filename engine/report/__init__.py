"""The report: forecast and trading metrics, significance tests, tables, charts, HTML.

- ``metrics``: forecast error beside persistence, trading and benchmark-relative figures
- ``statistics``: Diebold-Mariano (HLN), binomial directional test, hit rate by strength
- ``trades``: the rows of trades.csv and fills.csv
- ``tables``: comparison table, text/Markdown rendering, report.json writing
- ``charts``: static PNGs (matplotlib, Agg); ``interactive``: plotly figures
- ``page``: the self-contained report.html
"""

from engine.report.metrics import (
    benchmarks,
    fold_metrics,
    forecast_diagnostics,
    forecast_metrics,
    trading_metrics,
)
from engine.report.tables import (
    LOWER_IS_BETTER,
    TABLE_COLUMNS,
    comparison_table,
    forecast_table,
    format_value,
    render_table,
    sort_table,
    write_json,
)
from engine.report.trades import fills_frame, trade_records, trades_frame
from engine.timeframes import periods_per_year

__all__ = [
    "LOWER_IS_BETTER", "TABLE_COLUMNS", "benchmarks", "comparison_table", "fills_frame",
    "fold_metrics", "forecast_diagnostics", "forecast_metrics", "forecast_table",
    "format_value", "periods_per_year", "render_table", "sort_table", "trade_records",
    "trades_frame", "trading_metrics", "write_json",
]
