"""Paper trading: the backtest's strategy on live candles, simulated fills, SQLite state.

See ``engine.paper.trader`` for the per-candle procedure and ``python -m engine.paper``
for the commands.
"""
