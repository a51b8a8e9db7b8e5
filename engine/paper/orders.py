"""Orders on an exchange's sandbox (testnet), for paper fills; never real money.

API keys come only from the environment (``ENGINE_API_KEY``, ``ENGINE_API_SECRET`` and,
for exchanges that need one, ``ENGINE_API_PASSWORD``). They are handed to ccxt and to
nothing else: every message that leaves this module has them blanked out.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from engine.config import DataConfig
from engine.data.exchange import make_exchange
from engine.data.retry import call_with_retry
from engine.errors import ConfigError, EngineError

KEY_VARIABLES = {"apiKey": "ENGINE_API_KEY", "secret": "ENGINE_API_SECRET",
                 "password": "ENGINE_API_PASSWORD"}


def credentials_from_env() -> dict[str, str]:
    """The API credentials set in the environment.

    Raises:
        ConfigError: The key or the secret is missing.
    """
    found = {field: os.environ[var] for field, var in KEY_VARIABLES.items()
             if os.environ.get(var)}
    missing = [KEY_VARIABLES[f] for f in ("apiKey", "secret") if f not in found]
    if missing:
        raise ConfigError(f"--sandbox needs the environment variable(s) {', '.join(missing)} "
                          "with the exchange's testnet API key; keys are never read from files")
    return found


def redact(text: str, secrets: dict[str, str]) -> str:
    """``text`` with every secret value replaced by ``***``."""
    for value in secrets.values():
        if value:
            text = text.replace(value, "***")
    return text


class SandboxOrders:
    """Sends a market order to the exchange's sandbox for each paper fill.

    Raises:
        ConfigError: The exchange has no sandbox in ccxt, or the keys are missing.
    """

    def __init__(self, cfg: DataConfig, retries: int = 5, backoff_s: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep):
        self._secrets = credentials_from_env()
        self.exchange = make_exchange(cfg, sandbox=True, credentials=self._secrets)
        self.retries, self.backoff_s, self.sleep = retries, backoff_s, sleep

    def send(self, fill: dict[str, Any], client_id: str) -> str:
        """Place the order; returns the exchange's order id."""
        ex = self.exchange
        try:
            order = call_with_retry(
                lambda: ex.create_order(fill["symbol"], "market", fill["side"], fill["size"],
                                        params={"newClientOrderId": _client_id(client_id)}),
                what=f"{ex.id} sandbox {fill['side']} {fill['symbol']}", retries=self.retries,
                backoff_s=self.backoff_s, sleep=self.sleep)
        except EngineError as exc:
            raise type(exc)(redact(str(exc), self._secrets)) from None
        return str(order.get("id"))


def _client_id(text: str) -> str:
    """Exchange-safe client order id: the same candle and symbol always give the same id."""
    return "paper" + "".join(c for c in text if c.isalnum())[:30]

