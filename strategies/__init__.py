"""Backtrader strategies and indicators; see ``strategies.registry`` for names."""
