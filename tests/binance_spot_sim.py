"""An in-process simulated Binance spot REST API for tests (the network boundary only).

:meth:`BinanceSpotSim.install` replaces a real ``ccxt.binance`` instance's HTTP session, so
ccxt's own request signing, parsing, error mapping and precision code all run. Replies follow
Binance's documented formats (exchangeInfo filters, account, order, openOrders, allOrders,
ticker/24hr, klines); errors carry Binance's codes and messages (-1013 filter failures, -2010
insufficient balance, -2013 order does not exist, -1022 bad signature, -2014 bad API key).
Market orders fill at once at the simulated price with a commission in the received asset.

The exchangeInfo entries copy the filter values of BTCUSDT and ETHUSDT from ccxt's recorded
Binance markets (ccxt/ccxt ts/src/test/static/markets/binance.json); LINKUSDT's follow the
same format (step 0.01 LINK, tick 0.01 USDT, 5 USDT minimum notional).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pandas as pd
import requests
from requests.structures import CaseInsensitiveDict

API_KEY = "sim-api-key"  # not a real key: the simulator checks signatures made with it
SECRET = "sim-secret"


def _symbol(base: str, step: str, min_qty: str, tick: str, max_qty: str = "9000.00000000") -> dict:
    return {
        "symbol": f"{base}USDT",
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": "USDT",
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000", "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": min_qty, "maxQty": max_qty, "stepSize": step},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.00000000",
                "maxQty": "128.52621715",
                "stepSize": "0.00000000",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


SYMBOLS = {
    "BTCUSDT": _symbol("BTC", "0.00001000", "0.00001000", "0.01000000"),
    "ETHUSDT": _symbol("ETH", "0.00010000", "0.00010000", "0.01000000"),
    "LINKUSDT": _symbol("LINK", "0.01000000", "0.01000000", "0.01000000", "9000000.00000000"),
}


class SimulatedCrash(BaseException):
    """Stands for the process dying (not an Exception: nothing in ccxt or the executor catches it)."""


def _fmt(x: float | Decimal) -> str:
    return f"{Decimal(str(x)):.8f}"


class BinanceSpotSim:
    """A Binance spot account and matching engine behind ccxt's HTTP session."""

    def __init__(
        self,
        balances: dict[str, float],
        prices: dict[str, float],
        *,
        fee: float = 0.001,
        time: str = "2024-01-01T12:00:05Z",
        klines: dict[str, pd.DataFrame] | None = None,
    ):
        self.balances = {k: Decimal(str(v)) for k, v in balances.items()}
        self.prices = dict(prices)  # "BTCUSDT" -> price
        self.fee = Decimal(str(fee))
        self.time = pd.Timestamp(time)
        self.klines = klines or {}
        self.orders: list[dict] = []
        self.requests: list[tuple[str, str, dict]] = []
        self.before_order = None  # callable(params) run before an order is looked at (may raise)
        self.after_order = None  # callable(order) run after an order is accepted (may raise)
        self.cookies = requests.cookies.RequestsCookieJar()
        self.headers: dict[str, str] = {}

    # wiring ------------------------------------------------------------------------------------
    def install(self, exchange):
        exchange.session = self
        return exchange

    def _ms(self) -> int:
        return int(self.time.value // 1_000_000)

    def _reply(self, status: int, payload) -> requests.Response:
        r = requests.Response()
        r.status_code = status
        r.reason = "OK" if status == 200 else "Bad Request"
        r._content = json.dumps(payload).encode()
        r.headers = CaseInsensitiveDict({"Content-Type": "application/json;charset=UTF-8"})
        return r

    def _error(self, code: int, msg: str, status: int = 400) -> requests.Response:
        return self._reply(status, {"code": code, "msg": msg})

    def request(self, method, url, data=None, headers=None, **kwargs) -> requests.Response:
        parts = urlsplit(url)
        path = parts.path
        raw = parts.query if method in ("GET", "DELETE") else (data.decode() if isinstance(data, bytes) else data or "")
        params = dict(parse_qsl(raw, keep_blank_values=True))
        self.requests.append((method, path, params))
        if path.startswith("/api/v3/") and path[8:] in ("account", "order", "openOrders", "allOrders"):
            if (headers or {}).get("X-MBX-APIKEY") != API_KEY:
                return self._error(-2014, "API-key format invalid.", 401)
            payload, _, signature = raw.rpartition("&signature=")
            expected = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(signature, expected):
                return self._error(-1022, "Signature for this request is not valid.", 400)
        route = {
            ("GET", "/api/v3/exchangeInfo"): self._exchange_info,
            ("GET", "/api/v3/ticker/24hr"): self._ticker,
            ("GET", "/api/v3/klines"): self._klines,
            ("GET", "/api/v3/account"): self._account,
            ("POST", "/api/v3/order"): self._new_order,
            ("GET", "/api/v3/order"): self._get_order,
            ("GET", "/api/v3/openOrders"): self._open_orders,
            ("GET", "/api/v3/allOrders"): self._all_orders,
        }.get((method, path))
        if route is None:
            raise AssertionError(f"the simulated Binance has no endpoint {method} {path}")
        return route(params)

    # public ------------------------------------------------------------------------------------
    def _exchange_info(self, params) -> requests.Response:
        return self._reply(
            200,
            {
                "timezone": "UTC",
                "serverTime": self._ms(),
                "rateLimits": [
                    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}
                ],
                "exchangeFilters": [],
                "symbols": list(SYMBOLS.values()),
            },
        )

    def _ticker(self, params) -> requests.Response:
        sym = params["symbol"]
        p = _fmt(self.prices[sym])
        return self._reply(
            200,
            {
                "symbol": sym,
                "priceChange": "0.00000000",
                "priceChangePercent": "0.000",
                "weightedAvgPrice": p,
                "prevClosePrice": p,
                "lastPrice": p,
                "lastQty": "0.01000000",
                "bidPrice": p,
                "bidQty": "1.00000000",
                "askPrice": p,
                "askQty": "1.00000000",
                "openPrice": p,
                "highPrice": p,
                "lowPrice": p,
                "volume": "1000.00000000",
                "quoteVolume": "1000000.00000000",
                "openTime": self._ms() - 86_400_000,
                "closeTime": self._ms(),
                "firstId": 1,
                "lastId": 2,
                "count": 2,
            },
        )

    def _klines(self, params) -> requests.Response:
        frame = self.klines[params["symbol"]]
        step = int((frame.index[1] - frame.index[0]).value // 1_000_000)
        start = int(params.get("startTime", 0))
        limit = int(params.get("limit", 500))
        rows = []
        for t, r in frame.iterrows():
            open_ms = int(t.value // 1_000_000)
            if open_ms < start or open_ms > self._ms():  # nothing from the future
                continue
            rows.append(
                [
                    open_ms,
                    _fmt(r.open),
                    _fmt(r.high),
                    _fmt(r.low),
                    _fmt(r.close),
                    _fmt(r.volume),
                    open_ms + step - 1,
                    "0",
                    1,
                    "0",
                    "0",
                    "0",
                ]
            )
            if len(rows) == limit:
                break
        return self._reply(200, rows)

    # private -----------------------------------------------------------------------------------
    def _account(self, params) -> requests.Response:
        return self._reply(
            200,
            {
                "makerCommission": 10,
                "takerCommission": 10,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {
                    "maker": "0.00100000",
                    "taker": "0.00100000",
                    "buyer": "0.00000000",
                    "seller": "0.00000000",
                },
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": self._ms(),
                "accountType": "SPOT",
                "permissions": ["SPOT"],
                "uid": 1,
                "balances": [{"asset": a, "free": _fmt(v), "locked": "0.00000000"} for a, v in self.balances.items()],
            },
        )

    def _new_order(self, params) -> requests.Response:
        if self.before_order is not None:
            self.before_order(params)
        sym, side, kind = params["symbol"], params["side"], params["type"]
        info = SYMBOLS[sym]
        if kind != "MARKET":
            raise AssertionError(f"the simulation fills MARKET orders only, got {kind}")
        filters = {f["filterType"]: f for f in info["filters"]}
        qty = Decimal(params["quantity"])
        lot = filters["LOT_SIZE"]
        if (
            qty < Decimal(lot["minQty"])
            or qty > Decimal(lot["maxQty"])
            or (qty - Decimal(lot["minQty"])) % Decimal(lot["stepSize"]) != 0
        ):
            return self._error(-1013, "Filter failure: LOT_SIZE")
        price = Decimal(str(self.prices[sym]))
        quote_qty = qty * price
        if quote_qty < Decimal(filters["NOTIONAL"]["minNotional"]):
            return self._error(-1013, "Filter failure: NOTIONAL")
        base, quote = info["baseAsset"], info["quoteAsset"]
        if side == "BUY":
            if self.balances.get(quote, Decimal(0)) < quote_qty:
                return self._error(-2010, "Account has insufficient balance for requested action.")
            commission, commission_asset = qty * self.fee, base
            self.balances[quote] -= quote_qty
            self.balances[base] = self.balances.get(base, Decimal(0)) + qty - commission
        else:
            if self.balances.get(base, Decimal(0)) < qty:
                return self._error(-2010, "Account has insufficient balance for requested action.")
            commission, commission_asset = quote_qty * self.fee, quote
            self.balances[base] -= qty
            self.balances[quote] = self.balances.get(quote, Decimal(0)) + quote_qty - commission
        order = {
            "symbol": sym,
            "orderId": 1000 + len(self.orders),
            "orderListId": -1,
            "clientOrderId": params.get("newClientOrderId"),
            "price": "0.00000000",
            "origQty": _fmt(qty),
            "executedQty": _fmt(qty),
            "cummulativeQuoteQty": _fmt(quote_qty),
            "status": "FILLED",
            "timeInForce": "GTC",
            "type": "MARKET",
            "side": side,
            "stopPrice": "0.00000000",
            "icebergQty": "0.00000000",
            "time": self._ms(),
            "updateTime": self._ms(),
            "isWorking": True,
            "workingTime": self._ms(),
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }
        self.orders.append(order)
        if self.after_order is not None:
            self.after_order(order)
        reply = {
            k: order[k]
            for k in (
                "symbol",
                "orderId",
                "orderListId",
                "clientOrderId",
                "price",
                "origQty",
                "executedQty",
                "origQuoteOrderQty",
                "cummulativeQuoteQty",
                "status",
                "timeInForce",
                "type",
                "side",
                "workingTime",
                "selfTradePreventionMode",
            )
        }
        reply["transactTime"] = self._ms()
        reply["fills"] = [
            {
                "price": _fmt(price),
                "qty": _fmt(qty),
                "commission": _fmt(commission),
                "commissionAsset": commission_asset,
                "tradeId": 5000 + len(self.orders),
            }
        ]
        return self._reply(200, reply)

    def _get_order(self, params) -> requests.Response:
        for o in self.orders:
            if o["symbol"] != params["symbol"]:
                continue
            if ("origClientOrderId" in params and o["clientOrderId"] == params["origClientOrderId"]) or (
                "orderId" in params and str(o["orderId"]) == params["orderId"]
            ):
                return self._reply(200, o)
        return self._error(-2013, "Order does not exist.")

    def _open_orders(self, params) -> requests.Response:
        return self._reply(
            200, [o for o in self.orders if o["symbol"] == params.get("symbol") and o["status"] == "NEW"]
        )

    def _all_orders(self, params) -> requests.Response:
        return self._reply(200, [o for o in self.orders if o["symbol"] == params["symbol"]])

    # test helpers ---------------------------------------------------------------------------------
    def placed(self) -> list[tuple[str, str, str, str]]:
        """``(symbol, side, quantity, clientOrderId)`` of every accepted order, in order."""
        return [(o["symbol"], o["side"], o["origQty"], o["clientOrderId"]) for o in self.orders]


def connect_sim(balances: dict[str, float], prices: dict[str, float], **kwargs):
    """``(sim, exchange)``: a key-holding ``ccxt.binance`` built by the project's own
    :func:`cryptorl.live.connect.live_exchange` (keys from a fake environment), on the simulation."""
    from cryptorl.live.connect import live_exchange

    sim = BinanceSpotSim(balances, prices, **kwargs)
    exchange = live_exchange(
        "binance", confirm=lambda message: True, env={"BINANCE_API_KEY": API_KEY, "BINANCE_SECRET": SECRET}
    )
    return sim, sim.install(exchange)


def binance_markets() -> dict[str, dict]:
    """ccxt's parsed Binance markets for BTC/ETH/LINK against USDT (from the simulated exchangeInfo)."""
    import ccxt

    sim = BinanceSpotSim({}, {})
    exchange = sim.install(ccxt.binance({"options": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}}}))
    return exchange.load_markets()
