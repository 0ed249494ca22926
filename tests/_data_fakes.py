"""Fake HTTP servers for the data tests: Binance REST and Santiment GraphQL, in their wire formats.

Only the network boundary is replaced: ``requests.adapters.HTTPAdapter.send`` (the call that would
open a socket) answers from these fakes, so ccxt's and sanpy's own request building, error
mapping and parsing all run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import requests
from requests.adapters import HTTPAdapter

Handler = Callable[[requests.PreparedRequest], requests.Response]


def json_response(request: requests.PreparedRequest, status: int, payload) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp.reason = {200: "OK", 429: "Too Many Requests", 503: "Service Unavailable"}.get(status, "Error")
    resp.url = request.url
    resp.request = request
    resp.headers["Content-Type"] = "application/json"
    resp._content = json.dumps(payload).encode()
    resp.encoding = "utf-8"
    return resp


def text_response(request: requests.PreparedRequest, status: int, text: str) -> requests.Response:
    resp = json_response(request, status, None)
    resp.headers["Content-Type"] = "text/html"
    resp._content = text.encode()
    return resp


def install(monkeypatch, handler: Handler) -> None:
    """Route every HTTP request made through ``requests`` to ``handler``."""

    def send(self, request, **kwargs):
        return handler(request)

    monkeypatch.setattr(HTTPAdapter, "send", send)


# ---------------------------------------------------------------- Binance
def _symbol_info(base: str, quote: str) -> dict:
    """One entry of Binance's GET /api/v3/exchangeInfo 'symbols' list (recorded format)."""
    return {
        "symbol": base + quote,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01000000",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.01000000",
            },
            {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def klines_from_binance_csv(path: Path) -> list[list]:
    """The rows of a Binance klines CSV (``BTCUSDT_1d.csv``) as /api/v3/klines JSON rows: times in
    ms, prices and volumes as decimal strings, trades as an integer, as Binance sends them."""
    df = pd.read_csv(path, dtype=str)
    open_ms = pd.to_datetime(df["datetime"], utc=True).dt.as_unit("ms").astype("int64").tolist()
    close_ms = pd.to_datetime(df["close_time"], utc=True).dt.as_unit("ms").astype("int64").tolist()
    cols = [df[c].tolist() for c in ("open", "high", "low", "close", "volume")]
    rest = [
        df[c].tolist()
        for c in ("quote_asset_volume", "num_trades", "taker_buy_base_vol", "taker_buy_quote_vol", "ignore")
    ]
    return [
        [
            open_ms[i],
            cols[0][i],
            cols[1][i],
            cols[2][i],
            cols[3][i],
            cols[4][i],
            close_ms[i],
            rest[0][i],
            int(rest[1][i]),
            rest[2][i],
            rest[3][i],
            rest[4][i],
        ]
        for i in range(len(df))
    ]


def klines_from_market(market: pd.DataFrame, interval_ms: int) -> list[list]:
    """A market frame as /api/v3/klines JSON rows."""
    rows = []
    for t, r in zip(market.index.as_unit("ms").asi8, market.itertuples(index=False)):
        rows.append(
            [
                int(t),
                f"{r.open:.8f}",
                f"{r.high:.8f}",
                f"{r.low:.8f}",
                f"{r.close:.8f}",
                f"{r.volume:.8f}",
                int(t + interval_ms - 1),
                f"{r.volume * r.close:.8f}",
                100,
                f"{r.volume / 2:.8f}",
                f"{r.volume * r.close / 2:.8f}",
                "0",
            ]
        )
    return rows


class FakeBinance:
    """Binance spot REST: exchangeInfo and klines (startTime/endTime/limit semantics of the real API).

    ``faults`` maps the n-th klines request (1-based) to ``"429"`` (rate limit reply),
    ``"503"`` (HTML page), ``"-1001"`` (Binance internal error), ``"network"`` (connection error) or a callable run instead (e.g. to kill the process).
    """

    def __init__(self, klines: dict[tuple[str, str], list[list]], faults: dict | None = None):
        self.klines = klines
        self.faults = dict(faults or {})
        self.klines_calls: list[dict] = []
        self.urls: list[str] = []

    def __call__(self, request: requests.PreparedRequest) -> requests.Response:
        self.urls.append(request.url)
        url = urlparse(request.url)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path.endswith("/exchangeInfo"):
            symbols = []
            if url.path.startswith("/api/v3"):
                symbols = [_symbol_info(s[: -len("USDT")], "USDT") for s, _ in self.klines]
            return json_response(
                request,
                200,
                {
                    "timezone": "UTC",
                    "serverTime": 1700000000000,
                    "rateLimits": [],
                    "exchangeFilters": [],
                    "symbols": symbols,
                },
            )
        if url.path == "/api/v3/klines":
            self.klines_calls.append(q)
            fault = self.faults.pop(len(self.klines_calls), None)
            if fault == "429":
                return json_response(
                    request,
                    429,
                    {
                        "code": -1003,
                        "msg": "Too many requests; current limit of IP is 6000 requests per minute. Please use the websocket for live updates to avoid polling the API.",
                    },
                )
            if fault == "-1001":
                return json_response(
                    request,
                    503,
                    {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."},
                )
            if fault == "503":
                return text_response(
                    request, 503, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
                )
            if fault == "network":
                raise requests.exceptions.ConnectionError("Connection aborted: [Errno 104] Connection reset by peer")
            if callable(fault):
                fault()
            rows = self.klines.get((q["symbol"], q["interval"]), [])
            lo = int(q.get("startTime", 0))
            hi = int(q.get("endTime", 2**62))
            limit = min(int(q.get("limit", 500)), 1000)
            return json_response(request, 200, [r for r in rows if lo <= r[0] <= hi][:limit])
        return json_response(request, 404, {"code": -1, "msg": f"unknown path {url.path}"})


# ---------------------------------------------------------------- Santiment
RESTRICTED = (
    "The metric {metric} is not accessible with the currently used SANAPI FREE subscription. "
    "Please upgrade to SANAPI PRO subscription or a Custom Plan that has access to it.\n\n"
    "If you have a subscription for one product but attempt to fetch data using another product, "
    "this error will still be shown. The data on SANBASE cannot be fetched with a SANAPI subscription and vice versa.\n"
)


class FakeSantiment:
    """Santiment's GraphQL endpoint: projectBySlug.availableMetrics and getMetric.timeseriesDataJson.

    ``series[(slug, metric)]`` is a Series of values (UTC index); ``restricted`` metrics get
    Santiment's subscription error; ``faults`` maps the n-th getMetric request to ``"429"``,
    ``"network"`` or ``"503"``.
    """

    def __init__(
        self,
        series: dict[tuple[str, str], pd.Series],
        restricted: set[str] = frozenset(),
        faults: dict | None = None,
        extra_available: dict[str, list[str]] | None = None,
    ):
        self.series = series
        self.restricted = set(restricted)
        self.faults = dict(faults or {})
        self.extra_available = extra_available or {}
        self.metric_calls: list[dict] = []
        self.headers: list[dict] = []

    def available(self, slug: str) -> list[str]:
        have = sorted({m for s, m in self.series if s == slug} | self.restricted)
        return have + self.extra_available.get(slug, [])

    def __call__(self, request: requests.PreparedRequest) -> requests.Response:
        self.headers.append(dict(request.headers))
        query = json.loads(request.body)["query"]
        m = re.search(r'projectBySlug\(slug: "([^"]+)"\)\{\s*availableMetrics', query)
        if m:
            slug = m.group(1)
            if not self.available(slug):
                return json_response(
                    request,
                    200,
                    {
                        "data": {"projectBySlug": None},
                        "errors": [
                            {
                                "message": f"Project with slug '{slug}' not found.",
                                "locations": [{"line": 2, "column": 9}],
                                "path": ["projectBySlug"],
                            }
                        ],
                    },
                )
            return json_response(request, 200, {"data": {"projectBySlug": {"availableMetrics": self.available(slug)}}})
        m = re.search(r'(query_\d+): getMetric\(metric: "([^"]+)"\)', query)
        assert m, f"unexpected query {query}"
        alias, metric = m.groups()
        slug = re.search(r'slug:"([^"]+)"', query).group(1)
        start = pd.Timestamp(re.search(r'from: "([^"]+)"', query).group(1))
        end = pd.Timestamp(re.search(r'to: "([^"]+)"', query).group(1))
        interval = re.search(r'interval: "([^"]+)"', query).group(1)
        self.metric_calls.append({"metric": metric, "slug": slug, "from": start, "to": end, "interval": interval})
        fault = self.faults.pop(len(self.metric_calls), None)
        if fault == "429":
            return json_response(
                request, 429, {"errors": {"details": "API Rate Limit Reached. Try again in 3 seconds (1 minute)"}}
            )
        if fault == "503":
            return json_response(request, 503, {"errors": {"details": "Service unavailable"}})
        if fault == "network":
            raise requests.exceptions.ConnectionError("Connection aborted: [Errno 104] Connection reset by peer")
        if metric in self.restricted:
            return json_response(
                request,
                200,
                {
                    "data": {alias: None},
                    "errors": [
                        {
                            "message": RESTRICTED.format(metric=metric),
                            "locations": [{"line": 2, "column": 5}],
                            "path": [alias],
                        }
                    ],
                },
            )
        s = self.series[(slug, metric)]
        s = s[(s.index >= start) & (s.index <= end)]
        points = [
            {"datetime": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "value": None if np.isnan(v) else float(v)}
            for t, v in s.items()
        ]
        return json_response(request, 200, {"data": {alias: {"timeseriesDataJson": points}}})
