"""Credentials: where they come from, and blanking them out of everything that leaves us.

API keys are read only from the environment (``ENGINE_API_KEY``, ``ENGINE_API_SECRET`` and,
for exchanges that need one, ``ENGINE_API_PASSWORD``); a ``data.api_url`` may carry a
proxy's ``user:password``. None of them may reach a message, a log line or a file:
``redact`` is the one place that blanks them, and the command-line entry points apply it
to every log record and error line, and ``Config.to_dict`` to every written config.
"""

from __future__ import annotations

import logging
import os
import re
from urllib.parse import quote, unquote, urlsplit

ENV_VARIABLES = {"apiKey": "ENGINE_API_KEY", "secret": "ENGINE_API_SECRET",
                 "password": "ENGINE_API_PASSWORD"}
MASK = "***"
# Shorter values cannot be blanked without mangling unrelated text (a one-digit "secret"
# would blank every such digit in report.json); no real key or password is this short.
MIN_LENGTH = 4
# ``scheme://user:password@host``: the user and password part, whatever the scheme.
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_registered: set[str] = set()


def register(value: str | None) -> None:
    """Treat ``value`` as a secret from now on (a URL password read from a config)."""
    if value:
        _registered.update({value, unquote(value), quote(unquote(value), safe="")})


def register_url(url: str | None) -> None:
    """Register the password of ``scheme://user:password@host`` (no-op without one)."""
    if url:
        parts = urlsplit(url)
        register(parts.password)


def known_secrets() -> list[str]:
    """Every secret value known now, longest first (so no part of one survives another)."""
    values = {os.environ.get(var, "") for var in ENV_VARIABLES.values()} | _registered
    return sorted((v for v in values if len(v) >= MIN_LENGTH), key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with URL credentials and every known secret value replaced by ``***``.

    Example:
        >>> redact("GET http://bob:hunter2@proxy:8080/api")
        'GET http://***@proxy:8080/api'
    """
    text = _URL_USERINFO.sub(f"{MASK}@", text)
    for value in known_secrets():
        text = text.replace(value, MASK)
    return text


def redact_url(url: str | None) -> str | None:
    """``http://user:pw@host/x`` -> ``http://***@host/x``; other URLs unchanged."""
    return None if url is None else _URL_USERINFO.sub(f"{MASK}@", url)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record's final message before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add ``RedactingFilter`` to every handler of ``logger`` (the root logger by default)."""
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
