"""The engine's exceptions.

Every error a user can cause (a bad config, bad data, an unreachable exchange) is an
``EngineError``. The command-line entry points print its message as one line on stderr
and exit with status 2, so messages must say what was wrong, what was expected and how
to fix it, on one line. Anything else escaping a command is a bug.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of the errors a user can cause and fix."""


class ConfigError(EngineError):
    """The configuration file is missing, unreadable or invalid."""


class DataError(EngineError):
    """Market data is missing, malformed or fails validation."""


class ExchangeError(DataError):
    """The exchange refused a request for a reason that retrying will not fix."""


class TemporaryExchangeError(ExchangeError):
    """The exchange could not be reached or asked us to slow down, even after retries."""


class ModelError(EngineError):
    """The forecaster cannot be built or trained with the given settings and data."""


class ExecutionError(EngineError):
    """A strategy asked the execution core for something it cannot do (a weight for a
    symbol that is not traded, weights over the allowed leverage)."""


class StateError(EngineError):
    """A paper-trading state file is unusable with the given configuration."""


class InvalidKey(ValueError):
    """Raised while validating a config to name the offending key below the current section.

    Not an ``EngineError``: ``engine.config`` turns it into a ``ConfigError`` whose message
    carries the full key path, the value and ``problem``.
    """

    def __init__(self, loc: tuple, value: object, problem: str):
        super().__init__(problem)
        self.loc, self.value, self.problem = loc, value, problem
