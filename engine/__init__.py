"""Backtesting and simulation engine for ML trading strategies on crypto markets."""

__version__ = "0.1.0"
