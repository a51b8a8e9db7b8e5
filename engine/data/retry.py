"""Bounded retries with exponential backoff over temporary exchange failures only."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import ccxt

from engine.errors import ExchangeError, TemporaryExchangeError
from engine.secrets import redact

T = TypeVar("T")
log = logging.getLogger(__name__)

# Worth another try: ccxt's OperationFailed family, i.e. the network, timeouts, rate
# limiting, maintenance, 5xx replies and garbled replies (binance maps its internal-error
# code -1001 to OperationFailed itself).
TEMPORARY = (ccxt.OperationFailed,)
CSV_HINT = "check the network or data.api_url, or read candles from files with data.csv"


def call_with_retry(
    call: Callable[[], T],
    *,
    what: str,
    retries: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
    hint: str = CSV_HINT,
) -> T:
    """Run ``call``, retrying temporary failures up to ``retries`` times.

    The waits are ``backoff_s``, ``2 * backoff_s``, ``4 * backoff_s``, ... Permanent ccxt
    errors (bad symbol, authentication, any other exchange refusal) are not retried.

    Args:
        call: The request to make.
        what: What is being done, for error messages (exchange, symbol, timeframe).
        retries: Retries after the first attempt.
        backoff_s: The first wait, in seconds; it doubles after each failure.
        sleep: Waits between attempts; tests pass a recorder. Defaults to ``time.sleep``.
        hint: What the user can do when the failures persist, ending the error message.
            Defaults to ``CSV_HINT`` (paper trading, which cannot read files, has its own).

    Raises:
        TemporaryExchangeError: Still failing after the last retry.
        ExchangeError: A permanent refusal, on the first occurrence.
    """
    for attempt in range(retries + 1):
        try:
            return call()
        except TEMPORARY as exc:
            if attempt == retries:
                raise TemporaryExchangeError(
                    f"{what}: still failing after {retries + 1} attempts "
                    f"({describe_ccxt_error(exc)}); {hint}") from exc
            delay = backoff_s * 2**attempt
            log.warning("%s: %s; retry %d of %d in %.3gs", what, describe_ccxt_error(exc),
                        attempt + 1, retries, delay)
            sleep(delay)
        except ccxt.AuthenticationError as exc:
            raise ExchangeError(f"{what}: authentication refused "
                                f"({describe_ccxt_error(exc)}); check the API key "
                                "environment variables") from exc
        except ccxt.BaseError as exc:
            kind = type(exc).__name__
            raise ExchangeError(f"{what}: {kind}: {describe_ccxt_error(exc)}") from exc
    raise AssertionError("unreachable")  # the loop always returns or raises


def describe_ccxt_error(exc: BaseException) -> str:
    """A short, one-line description of a ccxt error (its messages embed whole replies).

    ccxt reports a failed connection as just the URL; the reason (no DNS, refused,
    timed out) is in the chained exception and is added here. Credentials are blanked:
    a reply may echo the API key, a URL may carry a proxy password.
    """
    text = " ".join(redact(str(exc)).split()) or type(exc).__name__
    reason = _connection_reason(exc.__cause__ or exc.__context__)
    if reason:
        text = f"{text}: {reason}"
    return text if len(text) <= 240 else text[:237] + "..."


def _connection_reason(cause: BaseException | None) -> str:
    if cause is None:
        return ""
    detail = str(cause)
    for needle, reason in (("NameResolution", "cannot resolve the host name (no network?)"),
                           ("Failed to resolve", "cannot resolve the host name (no network?)"),
                           ("Connection refused", "connection refused"),
                           ("timed out", "timed out"),
                           ("Read timed out", "timed out")):
        if needle in detail:
            return reason
    return type(cause).__name__
