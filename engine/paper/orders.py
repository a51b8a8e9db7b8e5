"""Orders on an exchange's sandbox (testnet), mirroring paper fills; never real money.

API keys come only from the environment (``ENGINE_API_KEY``, ``ENGINE_API_SECRET`` and,
for exchanges that need one, ``ENGINE_API_PASSWORD``). They are handed to ccxt and to
nothing else: every message that leaves this module has them blanked out.

Orders are sent only after the candle's fills are committed, each with a client order id
fixed at commit time. Before placing one, the exchange is asked whether an order with that
id already exists (a reply lost to a timeout, a crash after sending): a fill is mirrored at
most once. A refusal (say, too little testnet balance) is recorded as ``rejected: ...`` on
the fill; paper trading goes on.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from typing import Any
from urllib.parse import urlsplit

import ccxt

from engine.config import DataConfig
from engine.data.exchange import make_exchange
from engine.data.retry import call_with_retry, describe_ccxt_error
from engine.errors import ConfigError, EngineError, TemporaryExchangeError
from engine.paper.state import PaperState
from engine.secrets import ENV_VARIABLES as KEY_VARIABLES
from engine.secrets import redact

log = logging.getLogger(__name__)


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


def client_order_id(instance: str, when: str, symbol: str) -> str:
    """The same state file, candle and symbol always give the same id (36 chars at most)."""
    stamp = re.sub(r"\D", "", when)[:12]
    return f"p{instance}{stamp}{re.sub(r'[^A-Za-z0-9]', '', symbol)}"[:36]


def _is_local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SandboxOrders:
    """Mirrors committed paper fills as market orders on the exchange's sandbox.

    Raises:
        ConfigError: No sandbox for the exchange in ccxt, missing keys, or a
            ``data.api_url`` that is not on this machine (it would replace the sandbox
            URLs, and could lead to a live exchange).
    """

    def __init__(self, cfg: DataConfig, retries: int = 5, backoff_s: float = 1.0):
        if cfg.api_url and not _is_local(cfg.api_url):
            raise ConfigError(f"data.api_url = {cfg.api_url!r} cannot be used with --sandbox: "
                              "orders go only to the exchange's own sandbox URLs (or a test "
                              "exchange on this machine)")
        self._secrets = credentials_from_env()
        self.exchange = make_exchange(cfg, sandbox=True, credentials=self._secrets)
        self.retries, self.backoff_s = retries, backoff_s

    def send_pending(self, state: PaperState) -> int:
        """Place the order of every committed fill not mirrored yet; returns how many.

        Raises:
            TemporaryExchangeError: The sandbox cannot be reached; the fills stay pending
                and the next run sends them.
        """
        sent = 0
        for fill in state.unsent_orders().itertuples():
            state.set_order_id(fill.id, self._place(fill))
            sent += 1
        return sent

    def _place(self, fill: Any) -> str:
        ex, cid = self.exchange, fill.client_order_id
        what = f"{ex.id} sandbox {fill.side} {fill.symbol}"
        try:
            existing = self._lookup(fill.symbol, cid, what)
            if existing is not None:
                return existing
            order = ex.create_order(fill.symbol, "market", fill.side, fill.size,
                                    params={"newClientOrderId": cid})
            return str(order.get("id"))
        except (ccxt.OperationFailed, TemporaryExchangeError) as exc:  # not retried blindly
            raise TemporaryExchangeError(self._clean(f"{what}: {describe_ccxt_error(exc)}; "
                                                     "it is sent at the next run")) from None
        except (ccxt.BaseError, EngineError) as exc:
            reason = self._clean(describe_ccxt_error(exc))
            log.warning("%s refused: %s", what, reason)
            return f"rejected: {reason}"

    def _lookup(self, symbol: str, cid: str, what: str) -> str | None:
        ex = self.exchange
        try:
            order = call_with_retry(
                lambda: ex.fetch_order(None, symbol, params={"origClientOrderId": cid}),
                what=f"{what} lookup", retries=self.retries, backoff_s=self.backoff_s)
        except EngineError as exc:
            if isinstance(exc.__cause__, ccxt.OrderNotFound):
                return None
            raise
        return str(order.get("id"))

    def _clean(self, text: str) -> str:
        return redact(text)
