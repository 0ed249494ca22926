"""Turn target portfolio weights into exchange orders.

Target weights map each asset (``"BTC"``) to its share of the portfolio's value; cash (the quote
currency, e.g. USDT) holds the rest. :func:`plan_orders` reads the account's balances and the
current prices through ccxt's unified API, values the portfolio in the quote currency and sizes
one market order per asset:

* amounts are rounded by the exchange object's own ``amount_to_precision`` (ccxt truncates to
  the market's step size), never by hand;
* an order whose rounded amount is below ``limits.amount.min`` or whose value is below
  ``limits.cost.min`` (Binance's LOT_SIZE / NOTIONAL filters) is skipped and reported;
* sells come before buys, and buys are scaled down so that their cost plus a buffer for fees
  and price moves never exceeds the free cash plus the sells' net proceeds;
* every order carries a deterministic client order id derived from (account, interval close
  time, asset), so a restarted loop recognises orders it already sent, and so does a rerun of
  the same interval on the same account under another portfolio id or with the assets in
  another order (:func:`account_id` names the account).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ccxt
import pandas as pd

from cryptorl.data.frames import to_utc_timestamp

#: Binance's rule for ``newClientOrderId`` (the strictest common one): 1-36 of these characters.
CLIENT_ID_PATTERN = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
CLIENT_ID_PREFIX = "crl-"
_WEIGHT_TOL = 1e-6


def account_id(exchange: Any) -> str:
    """The account an exchange object trades for: a paper account's own id (kept in its file, so
    it survives a move), else the exchange id and a digest of the API key (never the key itself)."""
    own = getattr(exchange, "account_id", None)
    if isinstance(own, str) and own:
        return own
    key = str(getattr(exchange, "apiKey", "") or "")
    digest = hashlib.sha256(key.encode()).hexdigest()[:16] if key else "public"
    return f"{getattr(exchange, 'id', 'exchange')}:{digest}"


def client_order_id(account: str, close_time: Any, asset: str) -> str:
    """Deterministic client order id for one asset's order at one interval close on one account.

    ``"crl-"`` + the first 28 hex digits of sha256("account|close time ISO|ASSET"): 32
    characters, valid for Binance's ``newClientOrderId`` (36 max) and ccxt's ``clientOrderId``.
    """
    if not str(account).strip():
        raise ValueError("account must be a non-empty string")
    ts = to_utc_timestamp(close_time)
    key = f"{account}|{ts.isoformat()}|{asset.upper()}"
    return CLIENT_ID_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:28]


@dataclass(frozen=True)
class PlannedOrder:
    """One market order to send: ``amount`` in base units, already rounded by ccxt."""

    asset: str
    symbol: str
    side: str  # "buy" | "sell"
    amount: float
    price: float  # reference price (quote per base) the order was sized at
    client_order_id: str

    @property
    def notional(self) -> float:
        """Approximate value in the quote currency (amount x reference price)."""
        return self.amount * self.price


@dataclass(frozen=True)
class SkippedOrder:
    """An order the plan wanted but the market's limits do not allow (reported, not sent)."""

    asset: str
    symbol: str
    side: str
    amount: float  # wanted amount before rounding
    notional: float
    reason: str


@dataclass
class OrderPlan:
    """The orders that move the account from its current weights to the target weights."""

    portfolio_id: str
    close_time: pd.Timestamp
    quote: str
    value: float  # portfolio value in the quote currency (quote balance + assets at ``prices``)
    prices: dict[str, float]
    current: dict[str, float]  # current weights per asset
    target: dict[str, float]  # target weights per asset
    orders: list[PlannedOrder] = field(default_factory=list)  # sells first, then buys
    skipped: list[SkippedOrder] = field(default_factory=list)
    buy_scale: float = 1.0  # < 1 when buys were scaled down to fit the cash

    def summary(self) -> str:
        head = (
            f"plan for {self.portfolio_id} at {self.close_time:%Y-%m-%d %H:%M} UTC: "
            f"value {self.value:,.2f} {self.quote}, {len(self.orders)} order(s), {len(self.skipped)} skipped"
        )
        lines = [head]
        for asset in self.target:
            lines.append(
                f"  {asset:<6} weight {self.current.get(asset, 0.0):7.2%} -> {self.target[asset]:7.2%} "
                f"at {self.prices[asset]:,.8g} {self.quote}"
            )
        for o in self.orders:
            lines.append(
                f"  {o.side:<4} {o.amount:.10g} {o.symbol} (~{o.notional:,.2f} {self.quote}) id {o.client_order_id}"
            )
        for s in self.skipped:
            lines.append(f"  skip {s.side} {s.amount:.6g} {s.symbol}: {s.reason}")
        if self.buy_scale < 1.0:
            lines.append(f"  buys scaled by {self.buy_scale:.4f} to fit the cash")
        return "\n".join(lines)


def target_weights(weights: Mapping[str, float], assets: Sequence[str]) -> dict[str, float]:
    """Validate target weights; return ``{asset: weight}`` for every asset (missing -> 0).

    A ``"cash"`` entry is allowed and must make the weights sum to 1.
    """
    assets_u = [a.upper() for a in assets]
    out = {a: 0.0 for a in assets_u}
    cash = None
    for key, value in weights.items():
        try:
            w = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"[{key}] target weight {value!r} is not a number") from None
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"[{key}] target weight must be finite and >= 0, got {value!r}")
        if str(key).lower() == "cash":
            cash = w
            continue
        name = str(key).upper()
        if name not in out:
            raise ValueError(f"[{key}] target weight for an asset outside the portfolio {assets_u}")
        out[name] = w
    total = sum(out.values())
    if total > 1 + _WEIGHT_TOL:
        raise ValueError(f"[portfolio] target weights sum to {total:.6f} > 1 (long-only, no leverage)")
    if cash is not None and abs(cash + total - 1) > _WEIGHT_TOL:
        raise ValueError(f"[portfolio] cash {cash:.6f} + assets {total:.6f} != 1")
    return out


def _price_from_ticker(ticker: Mapping[str, Any], symbol: str) -> float:
    for key in ("last", "close", "bid"):
        value = ticker.get(key)
        if value is not None and math.isfinite(float(value)) and float(value) > 0:
            return float(value)
    raise ValueError(f"[{symbol}] the ticker has no usable price (last/close/bid): {dict(ticker)}")


def _round_amount(exchange: Any, symbol: str, amount: float) -> float:
    """ccxt's own rounding (TRUNCATE to the market's step); 0.0 when it rounds to nothing."""
    try:
        return float(exchange.amount_to_precision(symbol, amount))
    except ccxt.InvalidOrder:  # ccxt refuses amounts that round to zero
        return 0.0


def _too_small(market: Mapping[str, Any], amount: float, price: float, quote: str) -> str | None:
    limits = market.get("limits") or {}
    min_amount = (limits.get("amount") or {}).get("min")
    min_cost = (limits.get("cost") or {}).get("min")
    step = (market.get("precision") or {}).get("amount")
    if amount <= 0:
        return f"rounds to 0 at the market's amount precision ({step})"
    if min_amount is not None and amount < float(min_amount):
        return f"amount {amount:.10g} below the market's minimum amount {min_amount}"
    if min_cost is not None and amount * price < float(min_cost):
        return f"notional {amount * price:.4f} {quote} below the market's minimum cost {min_cost} {quote}"
    return None


def plan_orders(
    exchange: Any,
    target: Mapping[str, float],
    *,
    assets: Sequence[str],
    portfolio_id: str,
    close_time: Any,
    quote: str = "USDT",
    balance: Mapping[str, Any] | None = None,
    prices: Mapping[str, float] | None = None,
    fee_rate: float = 0.001,
    price_buffer: float = 0.002,
) -> OrderPlan:
    """Orders that take the account from its holdings to ``target`` weights.

    ``exchange`` is any ccxt-unified exchange object with markets loaded (a real ccxt exchange
    or :class:`cryptorl.live.paper.PaperExchange`). ``balance`` (a ccxt balance structure) and
    ``prices`` (asset -> quote price) are fetched from it when not given. Only the assets listed
    in ``assets`` and the ``quote`` balance count towards the portfolio's value. Buys are sized
    so that ``sum(cost) * (1 + fee_rate + price_buffer) <= free quote + net sell proceeds``.
    """
    if fee_rate < 0 or price_buffer < 0:
        raise ValueError("fee_rate and price_buffer must be >= 0")
    weights = target_weights(target, assets)
    close_ts = to_utc_timestamp(close_time)
    quote = quote.upper()
    if not getattr(exchange, "markets", None):
        exchange.load_markets()
    markets = {}
    for asset in weights:
        symbol = f"{asset}/{quote}"
        if symbol not in exchange.markets:
            raise ValueError(f"[{asset}] no market {symbol} on {getattr(exchange, 'id', 'the exchange')}")
        markets[asset] = exchange.markets[symbol]
    if balance is None:
        balance = exchange.fetch_balance()
    total = balance.get("total") or {}
    free = balance.get("free") or {}
    px: dict[str, float] = {}
    for asset in weights:
        symbol = f"{asset}/{quote}"
        if prices is not None and asset in prices:
            p = float(prices[asset])
            if not math.isfinite(p) or p <= 0:
                raise ValueError(f"[{asset}] price must be positive, got {prices[asset]!r}")
            px[asset] = p
        else:
            px[asset] = _price_from_ticker(exchange.fetch_ticker(symbol), symbol)

    held = {a: float(total.get(a) or 0.0) for a in weights}
    held_free = {a: float(free.get(a) or 0.0) for a in weights}
    cash_total = float(total.get(quote) or 0.0)
    cash_free = float(free.get(quote) or 0.0)
    value = cash_total + sum(held[a] * px[a] for a in weights)
    if not value > 0:
        raise ValueError(f"[portfolio] the account holds nothing of value in {quote} and {list(weights)}")
    current = {a: held[a] * px[a] / value for a in weights}

    plan = OrderPlan(portfolio_id, close_ts, quote, value, px, current, dict(weights))
    account = account_id(exchange)
    sells: list[PlannedOrder] = []
    wanted_buys: dict[str, float] = {}

    def order_or_skip(asset: str, side: str, want: float) -> PlannedOrder | None:
        """The order for ``want`` units rounded to the market's precision, or None (skip recorded)."""
        symbol = f"{asset}/{quote}"
        amount = _round_amount(exchange, symbol, want)
        reason = _too_small(markets[asset], amount, px[asset], quote)
        if reason:
            plan.skipped.append(SkippedOrder(asset, symbol, side, want, want * px[asset], reason))
            return None
        return PlannedOrder(asset, symbol, side, amount, px[asset], client_order_id(account, close_ts, asset))

    proceeds = 0.0
    for asset in weights:
        delta = weights[asset] * value / px[asset] - held[asset]
        if delta < 0:
            order = order_or_skip(asset, "sell", min(-delta, held_free[asset]))
            if order is not None:
                sells.append(order)
                proceeds += order.amount * px[asset] * (1 - fee_rate)
        elif delta > 0:
            wanted_buys[asset] = delta

    budget = max(cash_free, 0.0) + proceeds
    factor = 1 + fee_rate + price_buffer
    cost = sum(wanted_buys[a] * px[a] for a in wanted_buys) * factor
    if cost > budget:
        plan.buy_scale = budget / cost if cost > 0 else 0.0
    buys: list[PlannedOrder] = []
    for asset, want in wanted_buys.items():
        order = order_or_skip(asset, "buy", want * plan.buy_scale)
        if order is not None:
            buys.append(order)
    plan.orders = sells + buys
    return plan
