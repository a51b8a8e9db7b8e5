"""A loopback exchange: a real HTTP server on 127.0.0.1 speaking Binance spot's public API.

ccxt's own ``binance`` class, pointed at it through ``data.api_url``, loads markets, pages
through klines and reads tickers with its real HTTP and parsing code. The server serves
candles it is given, counts requests, follows a controllable clock (a candle is served
once its open time has come, so the last one served may still be open, as on Binance),
and injects faults on demand: HTTP 429, 5xx, replies slower than the client's timeout,
short pages, empty pages, malformed JSON, a garbled (cut-off) copy of the real reply, and
an error reply that echoes the caller's credentials back. It also accepts orders on the
spot order endpoint (as the sandbox would) and records them.

Given ``funding``, it also speaks Binance USD-M futures' public API (``/fapi/v1``, what
ccxt's ``binanceusdm`` class calls): the market list as perpetual contracts (symbols like
``BTC/USDT:USDT``), klines, and the funding rate history (``/fapi/v1/fundingRate``, in
the recorded shape ``{"symbol", "fundingTime", "fundingRate", "markPrice"}``), with the
faults above and two of its own: ``nan`` (a rate of "NaN" in the page) and ``disorder``
(two funding times of the page swapped).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pandas as pd

INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000,
               "4h": 14_400_000, "1d": 86_400_000, "1w": 604_800_000}


@dataclass
class Fault:
    """One injected fault: ``kind`` for the next ``times`` matching requests."""

    kind: str  # an HTTP status ("429", "500", ...), "slow", "short", "empty", "malformed",
    # "garbled", "echo_key" or "insufficient"
    times: int = 1
    path: str = "/api/v3/klines"
    delay_s: float = 2.0  # for "slow"
    after: int = 0  # matching requests served normally before the fault starts


class LoopbackExchange:
    """Serve ``candles`` ({"BTC/USDT": OHLCV frame}) at ``self.url`` until ``close()``.

    Args:
        candles: Per symbol, a frame indexed by UTC open time with open..volume columns.
        timeframe: The one interval served (others get Binance's "Invalid interval").
        max_limit: Candles per klines reply at most (Binance spot: 1000).
        now_ms: The server's clock; candles that have not opened yet are not served.
            Defaults to the last candle's close time + 1 ms (every candle served, closed).
    """

    def __init__(self, candles: dict[str, pd.DataFrame], timeframe: str = "1d",
                 max_limit: int = 1000, now_ms: int | None = None,
                 funding: dict[str, pd.Series] | None = None):
        self.candles = dict(candles)
        self.funding = dict(funding or {})  # perpetual symbol -> rates by funding time
        self.timeframe = timeframe
        self.max_limit = max_limit
        self.tf_ms = INTERVAL_MS[timeframe]
        last = max(int(f.index[-1].value // 1_000_000) for f in candles.values())
        self.now_ms = now_ms if now_ms is not None else last + self.tf_ms + 1
        self.requests: Counter[str] = Counter()
        self.log: list[tuple[str, dict]] = []
        self.orders: list[dict] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def kline_requests(self) -> int:
        return self.requests["/api/v3/klines"]

    def inject(self, kind: str, times: int = 1, path: str = "/api/v3/klines",
               delay_s: float = 2.0, after: int = 0) -> None:
        """Make ``times`` requests to ``path`` fail with ``kind``, after ``after`` good ones."""
        with self._lock:
            self.faults.append(Fault(kind, times, path, delay_s, after))

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.log.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LoopbackExchange:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- request handling ---------------------------------------------------------------

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if path.startswith(fault.path) and fault.times > 0:
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    fault.times -= 1
                    return fault
        return None

    def _market_id(self, symbol: str) -> str:
        return symbol.split(":")[0].replace("/", "")

    def _symbol(self, market_id: str | None) -> str | None:
        for symbol in self.candles:
            if self._market_id(symbol) == market_id:
                return symbol
        return None

    def _exchange_info(self) -> dict:
        symbols = []
        for symbol in self.candles:
            base, quote = symbol.split("/")
            symbols.append({
                "symbol": self._market_id(symbol), "status": "TRADING",
                "baseAsset": base, "baseAssetPrecision": 8,
                "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
                "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": True,
                "ocoAllowed": True, "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False, "permissions": ["SPOT"],
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "0.01000000",
                     "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
                    {"filterType": "LOT_SIZE", "minQty": "0.00001000",
                     "maxQty": "9000.00000000", "stepSize": "0.00001000"},
                    {"filterType": "NOTIONAL", "minNotional": "5.00000000",
                     "maxNotional": "9000000.00000000"},
                ],
            })
        return {"timezone": "UTC", "serverTime": self.now_ms, "rateLimits": [],
                "exchangeFilters": [], "symbols": symbols}

    def _futures_info(self) -> dict:
        """``/fapi/v1/exchangeInfo``: every symbol with funding as a USD-M perpetual."""
        symbols = []
        for symbol in self.funding:
            base, quote = symbol.split(":")[0].split("/")
            symbols.append({
                "symbol": self._market_id(symbol), "pair": self._market_id(symbol),
                "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
                "onboardDate": 1569398400000, "status": "TRADING",
                "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
                "baseAsset": base, "quoteAsset": quote, "marginAsset": quote,
                "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8,
                "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [],
                "settlePlan": 0, "triggerProtect": "0.0500", "liquidationFee": "0.012500",
                "marketTakeBound": "0.05",
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "0.10", "maxPrice": "4529764",
                     "tickSize": "0.10"},
                    {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000",
                     "stepSize": "0.001"},
                    {"filterType": "MIN_NOTIONAL", "notional": "100"},
                ],
                "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC"],
            })
        return {"timezone": "UTC", "serverTime": self.now_ms, "futuresType": "U_MARGINED",
                "rateLimits": [], "exchangeFilters": [], "assets": [], "symbols": symbols}

    def _funding_rates(self, query: dict, fault: Fault | None) -> tuple[int, object]:
        """``/fapi/v1/fundingRate``: funding times from ``startTime`` on, oldest first."""
        symbol = self._symbol(query.get("symbol"))
        if symbol is None or symbol not in self.funding:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        rates = self.funding[symbol]
        ms = pd.DatetimeIndex(rates.index).as_unit("ms").asi8
        keep = ms <= self.now_ms
        if "startTime" in query:
            keep &= ms >= int(query["startTime"])
        if "endTime" in query:
            keep &= ms <= int(query["endTime"])
        limit = min(int(query.get("limit", 100)), self.max_limit)
        if fault is not None and fault.kind == "short":
            limit = max(1, limit // 3)
        times, values = ms[keep][:limit].tolist(), rates.to_numpy()[keep][:limit].tolist()
        rows = [{"symbol": query["symbol"], "fundingTime": t, "fundingRate": f"{r:.8f}",
                 "markPrice": "10000.00000000"} for t, r in zip(times, values, strict=True)]
        if fault is not None and fault.kind == "nan" and rows:
            rows[len(rows) // 2]["fundingRate"] = "NaN"
        if fault is not None and fault.kind == "disorder" and len(rows) > 2:
            middle = len(rows) // 2
            rows[middle]["fundingTime"] = rows[middle - 2]["fundingTime"]
        return 200, rows

    def _served(self, symbol: str) -> pd.DataFrame:
        frame = self.candles[symbol]
        return frame[pd.DatetimeIndex(frame.index).as_unit("ms").asi8 <= self.now_ms]

    def _klines(self, query: dict, short: bool) -> tuple[int, object]:
        symbol = self._symbol(query.get("symbol"))
        if symbol is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if query.get("interval") != self.timeframe:
            return 400, {"code": -1120, "msg": "Invalid interval."}
        frame = self._served(symbol)
        ms = pd.DatetimeIndex(frame.index).as_unit("ms").asi8
        if "startTime" in query:
            frame, ms = frame[ms >= int(query["startTime"])], ms[ms >= int(query["startTime"])]
        if "endTime" in query:
            frame, ms = frame[ms <= int(query["endTime"])], ms[ms <= int(query["endTime"])]
        limit = min(int(query.get("limit", 500)), self.max_limit)
        if short:
            limit = max(1, limit // 3)
        rows = []
        values = frame.iloc[:limit][["open", "high", "low", "close", "volume"]]
        for t, (o, h, low, c, v) in zip(ms[:limit], values.itertuples(index=False), strict=True):
            rows.append([int(t), f"{o:.8f}", f"{h:.8f}", f"{low:.8f}", f"{c:.8f}", f"{v:.8f}",
                         int(t) + self.tf_ms - 1, f"{v * c:.8f}", 100, "0", "0", "0"])
        return 200, rows

    def _ticker_price(self, symbol: str) -> float:
        """The live price: the last served candle's close (or its open if it just opened)."""
        return float(self._served(symbol)["close"].iloc[-1])

    def _ticker(self, query: dict) -> tuple[int, object]:
        symbol = self._symbol(query.get("symbol"))
        if symbol is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        price = self._ticker_price(symbol)
        return 200, {"symbol": query["symbol"], "lastPrice": f"{price:.8f}",
                     "bidPrice": f"{price:.8f}", "askPrice": f"{price:.8f}",
                     "openPrice": f"{price:.8f}", "highPrice": f"{price:.8f}",
                     "lowPrice": f"{price:.8f}", "volume": "0", "quoteVolume": "0",
                     "openTime": self.now_ms - 86_400_000, "closeTime": self.now_ms,
                     "priceChange": "0", "priceChangePercent": "0", "count": 1}

    def _order(self, query: dict, headers) -> tuple[int, object]:
        if not headers.get("X-MBX-APIKEY"):
            return 401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
        symbol = self._symbol(query.get("symbol"))
        if symbol is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        price = self._ticker_price(symbol)
        qty = float(query.get("quantity", 0))
        order_id = len(self.orders) + 1
        self.orders.append({**query, "orderId": order_id})
        return 200, {"symbol": query["symbol"], "orderId": order_id,
                     "clientOrderId": query.get("newClientOrderId", f"x{order_id}"),
                     "transactTime": self.now_ms, "price": "0.00000000",
                     "origQty": f"{qty:.8f}", "executedQty": f"{qty:.8f}",
                     "cummulativeQuoteQty": f"{qty * price:.8f}", "status": "FILLED",
                     "timeInForce": "GTC", "type": query.get("type", "MARKET"),
                     "side": query.get("side", "BUY"), "fills": [
                         {"price": f"{price:.8f}", "qty": f"{qty:.8f}", "commission": "0",
                          "commissionAsset": "USDT", "tradeId": order_id}]}

    def _find_order(self, query: dict) -> tuple[int, object]:
        wanted = query.get("origClientOrderId")
        for order in self.orders:
            if order.get("newClientOrderId") == wanted:
                return 200, {"symbol": order["symbol"], "orderId": order["orderId"],
                             "clientOrderId": wanted, "status": "FILLED", "type": "MARKET",
                             "side": order.get("side", "BUY"), "price": "0",
                             "origQty": order.get("quantity", "0"),
                             "executedQty": order.get("quantity", "0"),
                             "time": self.now_ms, "updateTime": self.now_ms}
        return 400, {"code": -2013, "msg": "Order does not exist."}

    def _route(self, method: str, path: str, query: dict, headers,
               fault: Fault | None) -> tuple[int, object]:
        if method == "GET" and path == "/api/v3/exchangeInfo":
            return 200, self._exchange_info()
        if method == "GET" and path == "/api/v3/time":
            return 200, {"serverTime": self.now_ms}
        if method == "GET" and path == "/api/v3/ping":
            return 200, {}
        if method == "GET" and path in ("/api/v3/klines", "/fapi/v1/klines"):
            return self._klines(query, short=fault is not None and fault.kind == "short")
        if method == "GET" and path == "/fapi/v1/exchangeInfo":
            return 200, self._futures_info()
        if method == "GET" and path in ("/fapi/v1/time", "/fapi/v1/ping"):
            return 200, {"serverTime": self.now_ms}
        if method == "GET" and path == "/fapi/v1/fundingRate":
            return self._funding_rates(query, fault)
        if method == "GET" and path in ("/api/v3/ticker/24hr", "/api/v3/ticker/price",
                                        "/api/v3/ticker/bookTicker"):
            return self._ticker(query)
        if method == "POST" and path == "/api/v3/order":
            return self._order(query, headers)
        if method == "GET" and path == "/api/v3/order":
            return self._find_order(query)
        return 404, {"code": -1, "msg": f"no route {method} {path}"}

    def _handler(self):
        exchange = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _serve(self, method: str):
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                if method == "POST":
                    length = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(length).decode() if length else ""
                    query.update({k: v[-1] for k, v in parse_qs(body).items()})
                with exchange._lock:
                    exchange.requests[parts.path] += 1
                    exchange.log.append((parts.path, query))
                fault = exchange._take_fault(parts.path)
                if fault is not None and fault.kind == "slow":
                    time.sleep(fault.delay_s)
                failed = _fault_reply(fault, _credentials(self.headers))
                if failed is not None:
                    return self._send(*failed)
                status, payload = exchange._route(method, parts.path, query, self.headers, fault)
                body = json.dumps(payload)
                if fault is not None and fault.kind == "garbled":
                    body = body[: len(body) // 2]  # the real reply, cut off halfway
                return self._send(status, body)

            def _send(self, status: int, body: str):
                data = body.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a "slow" fault past its timeout)

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

            def do_DELETE(self):
                self._serve("DELETE")

        return Handler


def _credentials(headers) -> str:
    """What the caller sent to identify itself: binance's key header or HTTP basic auth."""
    if headers.get("X-MBX-APIKEY"):
        return headers["X-MBX-APIKEY"]
    auth = headers.get("Authorization") or ""
    if auth.startswith("Basic "):
        return base64.b64decode(auth[6:]).decode(errors="replace")
    return "(none)"


def _fault_reply(fault: Fault | None, credentials: str = "") -> tuple[int, str] | None:
    """The reply that replaces a real one for failing fault kinds (None: serve normally)."""
    if fault is None:
        return None
    if fault.kind == "empty":
        return 200, "[]"
    if fault.kind == "echo_key":  # a careless gateway quoting the request back
        return 503, json.dumps({"code": -1001, "msg": f"Internal error serving key "
                                                      f"{credentials}; try again"})
    if fault.kind.isdigit():
        status = int(fault.kind)
        payload = {"code": -1003, "msg": "Too many requests."} if status == 429 else \
            {"code": -1001, "msg": "Internal error; unable to process your request."}
        return status, json.dumps(payload)
    if fault.kind == "malformed":
        return 200, '[[1577836800000, "7195.24", "7255.0"'
    if fault.kind == "insufficient":
        return 400, json.dumps({"code": -2010, "msg": "Account has insufficient balance for "
                                                      "requested action."})
    return None
