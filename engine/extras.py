"""The optional installs (pyproject's extras) and a one-line error when one is missing.

``pip install -e .`` runs backtests, comparisons, paper trading and the report. Parameter
sweeps need the ``sweep`` extra (Ray, Optuna, numba) and the reinforcement-learning
environment and the ``rl_ppo`` strategy need the ``rl`` extra (gymnasium,
stable-baselines3 and with it PyTorch). A command or strategy that needs one checks for it
with ``require`` before any slow work, without importing the packages (finding them is
enough, and costs microseconds).
"""

from __future__ import annotations

import importlib.util

from engine.errors import EngineError

# The top-level modules each extra brings, as pyproject.toml lists its packages.
EXTRAS: dict[str, tuple[str, ...]] = {
    "sweep": ("ray", "optuna", "numba"),
    "rl": ("gymnasium", "stable_baselines3", "torch"),
}


class MissingExtra(EngineError):
    """A command or strategy needs an optional install that is not there."""


def missing(extra: str) -> str | None:
    """The first module of ``extra`` that cannot be found, or None when all are there."""
    for module in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken or blocked package counts as missing
            found = False
        if not found:
            return module
    return None


def require(extra: str, what: str) -> None:
    """Raise ``MissingExtra`` naming the extra and how to install it when it is missing.

    Args:
        extra: ``sweep`` or ``rl``.
        what: Who needs it, for the message (``python -m engine.sweep``, ``rl_ppo``).

    Raises:
        MissingExtra: ``what needs the rl extra (gymnasium is not installed): pip install
            -e ".[rl]" (or pip install "lstm-trading-engine[rl]")``.
    """
    module = missing(extra)
    if module is not None:
        raise MissingExtra(f"{what} needs the {extra} extra ({module} is not installed): "
                           f'pip install -e ".[{extra}]" in the repository (or pip install '
                           f'"lstm-trading-engine[{extra}]")')
