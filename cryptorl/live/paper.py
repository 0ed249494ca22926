"""A paper-trading account that speaks the subset of ccxt's unified API the executor uses.

:class:`PaperExchange` keeps balances, orders, fills, the last bar per symbol and an equity
curve in one SQLite file, so a restarted loop continues where it stopped. Market definitions
(precision and limits) are real ccxt market structures, e.g. ``ccxt.binance().load_markets()``
saved once; they are stored in the account file, and amounts and prices are rounded by a
ccxt exchange object of the same class (its ``amount_to_precision`` / ``price_to_precision``,
i.e. ccxt's ``decimal_to_precision`` in the exchange's precision mode).

Execution model (the contract's ``execution="next_open"``): a market order placed after bar
``t`` closed fills at the **open of the next bar** supplied by :meth:`PaperExchange.on_bar`,
with the configured fee charged in the asset received (as Binance does by default):

* buy ``q`` at open ``p``: quote ``-= q * p``; base ``+= q * (1 - fee)``;
* sell ``q`` at open ``p``: base ``-= q``; quote ``+= q * p * (1 - fee)``.

Pending orders fill in the order they were placed (sells first when the executor placed them
so). A buy the quote balance cannot pay at the fill price is rejected (status ``rejected``).
Only market orders are supported.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ccxt
import pandas as pd

from cryptorl._sqlite import connect, transaction
from cryptorl.data.frames import interval_timedelta, to_utc_timestamp

_DEFAULT_CASH = {"USDT": 10_000.0}
_EPS = 1e-12


def _ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)


def _from_ms(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def _iso_ms(ms: int | None) -> str | None:
    return None if ms is None else _from_ms(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def account_exists(path: str | Path) -> bool:
    """Whether ``path`` holds a paper account that was set up (an empty or half-created file does not)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    db = connect(path)
    try:
        return (
            db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone() is not None
            and db.execute("SELECT 1 FROM meta WHERE key='markets'").fetchone() is not None
        )
    finally:
        db.close()


class PaperExchange:
    """Simulated spot account persisted in SQLite; ccxt-unified methods for the executor.

    Parameters
    ----------
    path:
        The account file. Created on first use (then ``markets`` and ``interval`` are required);
        reopened afterwards with everything it stored (arguments may be omitted).
    markets:
        ccxt market structures keyed by symbol (what ``exchange.load_markets()`` returns).
    exchange_id:
        ccxt class whose precision rules apply (default ``"binance"``).
    interval:
        Bar size the account is fed with (``"6h"``, ``"1d"``); orders placed after bar ``t``
        carry the time ``t + interval`` (the next bar's open).
    fee:
        Fee rate per fill (default 0.001, Binance spot taker).
    initial_balance:
        Starting balances (default 10 000 USDT), used only when the file is created.
    """

    def __init__(
        self,
        path: str | Path,
        markets: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        exchange_id: str | None = None,
        interval: str | None = None,
        fee: float | None = None,
        initial_balance: Mapping[str, float] | None = None,
    ):
        self.path = Path(path)
        new = not account_exists(self.path)
        settings = (
            markets,
            exchange_id or "binance",
            interval,
            0.001 if fee is None else fee,
            initial_balance if initial_balance is not None else _DEFAULT_CASH,
        )
        if new:  # every setting checked before the file is created: a refused account leaves nothing
            self._check_new(*settings)
        created = not self.path.exists()
        self._db = connect(self.path)
        try:
            self._create_tables()
            meta = self._meta()
            if not meta:
                self._initialise(*settings)
                meta = self._meta()
        except BaseException:
            self._db.close()
            if created:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            raise
        if not new:
            stored = {"exchange_id": meta["exchange_id"], "interval": meta["interval"], "fee": float(meta["fee"])}
            for name, given in (("exchange_id", exchange_id), ("interval", interval), ("fee", fee)):
                if given is not None and given != stored[name]:
                    raise ValueError(
                        f"paper account {self.path} was created with {name}={stored[name]}, not {given}; "
                        "use another --paper-db to start a different account"
                    )
        self.exchange_id = meta["exchange_id"]
        self.interval = meta["interval"]
        self.fee = float(meta["fee"])
        self._step = interval_timedelta(self.interval)
        self.id = f"paper-{self.exchange_id}"
        self._ref = getattr(ccxt, self.exchange_id)()  # used offline, for precision only
        self._ref.set_markets(json.loads(meta["markets"]))
        self.markets = self._ref.markets
        self.symbols = self._ref.symbols
        quotes = [m["quote"] for m in self.markets.values()]
        self.quote = max(set(quotes), key=quotes.count)  # the currency equity() is counted in
        self.has = {
            "fetchOrder": True,
            "fetchOrders": True,
            "fetchOpenOrders": True,
            "fetchClosedOrders": True,
            "fetchBalance": True,
            "fetchTicker": True,
            "createOrder": True,
            "createMarketOrder": True,
        }

    # storage -----------------------------------------------------------------------------------
    def _create_tables(self) -> None:
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS balances (currency TEXT PRIMARY KEY, total REAL NOT NULL)")
            db.execute(
                """CREATE TABLE IF NOT EXISTS orders (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, client_order_id TEXT NOT NULL UNIQUE,
                    symbol TEXT NOT NULL, type TEXT NOT NULL, side TEXT NOT NULL, amount REAL NOT NULL,
                    status TEXT NOT NULL, timestamp INTEGER NOT NULL, fill_time INTEGER, price REAL,
                    cost REAL, fee_cost REAL, fee_currency TEXT, reason TEXT)"""
            )
            db.execute(
                """CREATE TABLE IF NOT EXISTS bars (symbol TEXT PRIMARY KEY, time INTEGER NOT NULL,
                   open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL)"""
            )
            db.execute("CREATE TABLE IF NOT EXISTS equity (time INTEGER PRIMARY KEY, value REAL NOT NULL)")

    def _initialise(self, markets, exchange_id, interval, fee, balance) -> None:
        self._check_new(markets, exchange_id, interval, fee, balance)
        with self._tx() as db:
            for key, value in (
                ("markets", json.dumps(dict(markets), default=str)),
                ("exchange_id", exchange_id),
                ("interval", interval),
                ("fee", repr(float(fee))),
                ("created_at", pd.Timestamp.now(tz="UTC").isoformat()),
            ):
                db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
            for code, amount in balance.items():
                db.execute("INSERT INTO balances (currency, total) VALUES (?, ?)", (code.upper(), float(amount)))

    def _check_new(self, markets, exchange_id, interval, fee, balance) -> None:
        """The settings of a new account (raises ``ValueError`` naming the bad one)."""
        if not markets:
            raise ValueError(
                f"paper account {self.path} does not exist yet: give the market definitions (ccxt markets)"
            )
        if interval is None:
            raise ValueError(f"paper account {self.path} does not exist yet: give the bar interval (e.g. '6h')")
        interval_timedelta(interval)  # validates
        if not hasattr(ccxt, exchange_id):
            raise ValueError(f"unknown ccxt exchange id {exchange_id!r}")
        if not 0 <= fee < 0.1:
            raise ValueError(f"fee rate {fee} out of range [0, 0.1)")
        for code, amount in balance.items():
            if not math.isfinite(float(amount)) or float(amount) < 0:
                raise ValueError(f"[{code}] initial balance must be >= 0, got {amount!r}")

    @property
    def account_id(self) -> str:
        """This account's id in client order ids: ``paper:`` and the time it was created."""
        return f"paper:{self._meta()['created_at']}"

    def _meta(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self._db.execute("SELECT key, value FROM meta")}

    def _tx(self) -> transaction:
        return transaction(self._db)

    def close(self) -> None:
        self._db.close()

    # ccxt: markets and precision -----------------------------------------------------------------
    def load_markets(self, reload: bool = False, params: dict | None = None) -> dict:
        return self.markets

    def market(self, symbol: str) -> dict:
        if symbol not in self.markets:
            raise ccxt.BadSymbol(f"{self.id} has no market {symbol}")
        return self.markets[symbol]

    def amount_to_precision(self, symbol: str, amount: float) -> str:
        self.market(symbol)
        return self._ref.amount_to_precision(symbol, amount)

    def price_to_precision(self, symbol: str, price: float) -> str:
        self.market(symbol)
        return self._ref.price_to_precision(symbol, price)

    def cost_to_precision(self, symbol: str, cost: float) -> str:
        self.market(symbol)
        return self._ref.cost_to_precision(symbol, cost)

    # ccxt: account and prices ---------------------------------------------------------------------
    def _balances(self) -> dict[str, float]:
        return {r["currency"]: r["total"] for r in self._db.execute("SELECT currency, total FROM balances")}

    def _open_orders(self, symbol: str | None = None) -> list[sqlite3.Row]:
        sql, args = "SELECT * FROM orders WHERE status='open'", ()
        if symbol is not None:
            sql, args = sql + " AND symbol=?", (symbol,)
        return self._db.execute(sql + " ORDER BY id", args).fetchall()

    def fetch_balance(self, params: dict | None = None) -> dict:
        total = self._balances()
        used: dict[str, float] = {}
        for o in self._open_orders():
            if o["side"] == "sell":
                base = self.markets[o["symbol"]]["base"]
                used[base] = used.get(base, 0.0) + o["amount"]
        out: dict[str, Any] = {"info": {"balances": total}, "free": {}, "used": {}, "total": {}}
        for code, amount in total.items():
            u = used.get(code, 0.0)
            out[code] = {"free": amount - u, "used": u, "total": amount}
            out["free"][code], out["used"][code], out["total"][code] = amount - u, u, amount
        last = self.last_bar_time()
        out["timestamp"] = None if last is None else _ms(last + self._step)
        out["datetime"] = _iso_ms(out["timestamp"])
        return out

    def _bar(self, symbol: str) -> sqlite3.Row:
        row = self._db.execute("SELECT * FROM bars WHERE symbol=?", (symbol,)).fetchone()
        if row is None:
            raise ccxt.ExchangeError(f"{self.id} has no bar for {symbol} yet: feed bars with on_bar() / on_bars()")
        return row

    def fetch_ticker(self, symbol: str, params: dict | None = None) -> dict:
        self.market(symbol)
        bar = self._bar(symbol)
        ts = _ms(_from_ms(bar["time"]) + self._step)  # the bar's close
        return {
            "symbol": symbol,
            "timestamp": ts,
            "datetime": _iso_ms(ts),
            "open": bar["open"],
            "high": bar["high"],
            "low": bar["low"],
            "close": bar["close"],
            "last": bar["close"],
            "bid": bar["close"],
            "ask": bar["close"],
            "info": dict(bar),
        }

    # ccxt: orders ----------------------------------------------------------------------------------
    def _order(self, row: sqlite3.Row) -> dict:
        filled = row["amount"] if row["status"] == "closed" else 0.0
        fee = None
        if row["fee_cost"] is not None:
            fee = {"cost": row["fee_cost"], "currency": row["fee_currency"], "rate": self.fee}
        return {
            "id": str(row["id"]),
            "clientOrderId": row["client_order_id"],
            "timestamp": row["timestamp"],
            "datetime": _iso_ms(row["timestamp"]),
            "lastTradeTimestamp": row["fill_time"],
            "lastUpdateTimestamp": row["fill_time"],
            "symbol": row["symbol"],
            "type": row["type"],
            "timeInForce": "GTC",
            "postOnly": False,
            "reduceOnly": None,
            "side": row["side"],
            "price": row["price"],
            "triggerPrice": None,
            "stopPrice": None,
            "amount": row["amount"],
            "cost": row["cost"] if row["cost"] is not None else 0.0,
            "average": row["price"],
            "filled": filled,
            "remaining": row["amount"] - filled if row["status"] != "rejected" else 0.0,
            "status": row["status"],
            "fee": fee,
            "fees": [fee] if fee else [],
            "trades": [],
            "info": dict(row),
        }

    def create_order(
        self, symbol: str, type: str, side: str, amount: float, price: float | None = None, params: dict | None = None
    ) -> dict:
        """Accept a market order; it fills at the next bar's open (see the module docstring)."""
        params = params or {}
        market = self.market(symbol)
        if type != "market":
            raise ccxt.NotSupported(f"{self.id} fills market orders only, not {type!r}")
        if side not in ("buy", "sell"):
            raise ccxt.InvalidOrder(f"{self.id} order side must be 'buy' or 'sell', not {side!r}")
        amount = float(self.amount_to_precision(symbol, amount))  # as ccxt does before sending
        bar = self._bar(symbol)
        ref = bar["close"]
        limits = market.get("limits") or {}
        min_amount = (limits.get("amount") or {}).get("min")
        min_cost = (limits.get("cost") or {}).get("min")
        if min_amount is not None and amount < float(min_amount):
            raise ccxt.InvalidOrder(f"{self.id} {symbol} amount {amount} below the minimum {min_amount} (LOT_SIZE)")
        if min_cost is not None and amount * ref < float(min_cost):
            raise ccxt.InvalidOrder(
                f"{self.id} {symbol} notional {amount * ref:.4f} below the minimum {min_cost} (NOTIONAL)"
            )
        cid = params.get("clientOrderId") or params.get("newClientOrderId")
        if cid is None:
            cid = f"paper-{pd.Timestamp.now(tz='UTC').value}"
        if self._db.execute("SELECT 1 FROM orders WHERE client_order_id=?", (cid,)).fetchone():
            raise ccxt.InvalidOrder(f"{self.id} duplicate clientOrderId {cid}")
        base, quote = market["base"], market["quote"]
        balances = self.fetch_balance()
        if side == "sell":
            free = balances["free"].get(base, 0.0)
            if amount > free + _EPS:
                raise ccxt.InsufficientFunds(f"{self.id} sell {amount} {base}: only {free} {base} free")
        else:
            pending = 0.0
            for o in self._open_orders():
                px = self._bar(o["symbol"])["close"]
                if self.markets[o["symbol"]]["quote"] == quote:
                    pending += o["amount"] * px * (1 - self.fee) if o["side"] == "sell" else -o["amount"] * px
            available = balances["total"].get(quote, 0.0) + pending
            if amount * ref > available + _EPS:
                raise ccxt.InsufficientFunds(
                    f"{self.id} buy {amount} {base} needs ~{amount * ref:.2f} {quote}, {available:.2f} available"
                )
        ts = _ms(self.last_bar_time() + self._step)  # the next bar's open: where it will fill
        with self._tx() as db:
            cur = db.execute(
                """INSERT INTO orders (client_order_id, symbol, type, side, amount, status, timestamp)
                   VALUES (?, ?, 'market', ?, ?, 'open', ?)""",
                (cid, symbol, side, amount, ts),
            )
            row_id = cur.lastrowid
        return self._order(self._db.execute("SELECT * FROM orders WHERE id=?", (row_id,)).fetchone())

    def fetch_order(self, id: str | None, symbol: str | None = None, params: dict | None = None) -> dict:
        params = params or {}
        cid = params.get("clientOrderId") or params.get("origClientOrderId")
        if cid is not None:
            row = self._db.execute("SELECT * FROM orders WHERE client_order_id=?", (cid,)).fetchone()
        elif id is not None:
            row = self._db.execute("SELECT * FROM orders WHERE id=?", (int(id),)).fetchone()
        else:
            raise ccxt.ArgumentsRequired(f"{self.id} fetch_order needs an id or params['clientOrderId']")
        if row is None or (symbol is not None and row["symbol"] != symbol):
            raise ccxt.OrderNotFound(f"{self.id} order {cid or id} does not exist")
        return self._order(row)

    def fetch_orders(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: dict | None = None,
        *,
        status: str | None = None,
    ) -> list[dict]:
        sql, args = "SELECT * FROM orders WHERE 1=1", []
        if symbol is not None:
            sql += " AND symbol=?"
            args.append(symbol)
        if since is not None:
            sql += " AND timestamp>=?"
            args.append(int(since))
        if status is not None:
            sql += " AND status=?"
            args.append(status)
        rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        orders = [self._order(r) for r in rows]
        return orders[-limit:] if limit else orders

    def fetch_open_orders(
        self, symbol: str | None = None, since: int | None = None, limit: int | None = None, params: dict | None = None
    ) -> list[dict]:
        return self.fetch_orders(symbol, since, limit, params, status="open")

    def fetch_closed_orders(
        self, symbol: str | None = None, since: int | None = None, limit: int | None = None, params: dict | None = None
    ) -> list[dict]:
        return self.fetch_orders(symbol, since, limit, params, status="closed")

    # bars: the paper exchange's clock ------------------------------------------------------------
    def last_bar_time(self) -> pd.Timestamp | None:
        """Open time of the latest bar processed (None before the first bar)."""
        row = self._db.execute("SELECT value FROM meta WHERE key='last_bar_time'").fetchone()
        return None if row is None else _from_ms(int(row["value"]))

    def on_bar(self, time: Any, prices: Mapping[str, Mapping[str, float]]) -> int:
        """Process the bar that opened at ``time``: fill pending orders at its open; return fills.

        ``prices`` maps symbols (``"BTC/USDT"``) to ``{"open", "high", "low", "close"}``. A bar at
        or before the last one processed is ignored (replaying bars never fills twice).
        """
        t = to_utc_timestamp(time)
        last = self.last_bar_time()
        if last is not None and t <= last:
            return 0
        clean: dict[str, dict[str, float]] = {}
        for symbol, bar in prices.items():
            self.market(symbol)
            vals = {k: float(bar[k]) for k in ("open", "high", "low", "close")}
            if not all(math.isfinite(v) and v > 0 for v in vals.values()):
                raise ValueError(f"[{symbol}] bar at {t} has non-positive or missing prices: {vals}")
            clean[symbol] = vals
        fills = 0
        with self._tx() as db:
            bal = self._balances()
            for o in self._open_orders():
                if o["symbol"] not in clean or o["timestamp"] > _ms(t):
                    continue
                fills += self._fill(db, o, clean[o["symbol"]]["open"], t, bal)
            for symbol, vals in clean.items():
                db.execute(
                    """INSERT INTO bars (symbol, time, open, high, low, close) VALUES (?, ?, ?, ?, ?, ?)
                       ON CONFLICT (symbol) DO UPDATE SET time=excluded.time, open=excluded.open,
                       high=excluded.high, low=excluded.low, close=excluded.close""",
                    (symbol, _ms(t), vals["open"], vals["high"], vals["low"], vals["close"]),
                )
            for code, amount in bal.items():
                db.execute(
                    """INSERT INTO balances (currency, total) VALUES (?, ?)
                              ON CONFLICT (currency) DO UPDATE SET total=excluded.total""",
                    (code, amount),
                )
            db.execute(
                """INSERT INTO meta (key, value) VALUES ('last_bar_time', ?)
                          ON CONFLICT (key) DO UPDATE SET value=excluded.value""",
                (str(_ms(t)),),
            )
            db.execute(
                "INSERT OR REPLACE INTO equity (time, value) VALUES (?, ?)", (_ms(t + self._step), self._value(db, bal))
            )
        return fills

    def _fill(
        self, db: sqlite3.Connection, o: sqlite3.Row, price: float, t: pd.Timestamp, bal: dict[str, float]
    ) -> int:
        market = self.markets[o["symbol"]]
        base, quote = market["base"], market["quote"]
        amount, cost = o["amount"], o["amount"] * price
        if o["side"] == "buy":
            if cost > bal.get(quote, 0.0) + _EPS:
                db.execute(
                    "UPDATE orders SET status='rejected', fill_time=?, reason=? WHERE id=?",
                    (
                        _ms(t),
                        f"insufficient {quote} at the fill: need {cost:.8f}, have {bal.get(quote, 0.0):.8f}",
                        o["id"],
                    ),
                )
                return 0
            fee_cost, fee_cur = amount * self.fee, base
            bal[quote] = bal.get(quote, 0.0) - cost
            bal[base] = bal.get(base, 0.0) + amount - fee_cost
        else:
            if amount > bal.get(base, 0.0) + _EPS:
                db.execute(
                    "UPDATE orders SET status='rejected', fill_time=?, reason=? WHERE id=?",
                    (_ms(t), f"insufficient {base} at the fill", o["id"]),
                )
                return 0
            fee_cost, fee_cur = cost * self.fee, quote
            bal[base] = bal.get(base, 0.0) - amount
            bal[quote] = bal.get(quote, 0.0) + cost - fee_cost
        db.execute(
            """UPDATE orders SET status='closed', fill_time=?, price=?, cost=?, fee_cost=?, fee_currency=?
                      WHERE id=?""",
            (_ms(t), price, cost, fee_cost, fee_cur, o["id"]),
        )
        return 1

    def _value(self, db: sqlite3.Connection, bal: Mapping[str, float]) -> float:
        """Account value in ``self.quote`` at the latest closes (coins without a price count 0)."""
        closes = {r["symbol"]: r["close"] for r in db.execute("SELECT symbol, close FROM bars")}
        quote = self.quote
        value = bal.get(quote, 0.0)
        for symbol, close in closes.items():
            m = self.markets[symbol]
            if m["quote"] == quote:
                value += bal.get(m["base"], 0.0) * close
        return value

    def on_bars(self, frames: Mapping[str, pd.DataFrame]) -> int:
        """Feed market frames (symbol -> OHLC frame indexed by bar open time) in time order.

        Only bars after the last one processed are used; a new account starts from the latest bar.
        """
        last = self.last_bar_time()
        times = sorted({t for df in frames.values() for t in df.index if last is None or t > last})
        if last is None and times:
            times = times[-1:]
        fills = 0
        for t in times:
            fills += self.on_bar(t, {s: df.loc[t] for s, df in frames.items() if t in df.index})
        return fills

    # reports ----------------------------------------------------------------------------------------
    def equity(self) -> pd.Series:
        """Account value in the quote currency at each processed bar's close."""
        rows = self._db.execute("SELECT time, value FROM equity ORDER BY time").fetchall()
        idx = pd.DatetimeIndex([_from_ms(r["time"]) for r in rows], name="time")
        return pd.Series([r["value"] for r in rows], index=idx, name="value", dtype="float64")

    def fills(self) -> pd.DataFrame:
        """Every order with its status, fill time, price, cost and fee."""
        return pd.read_sql_query("SELECT * FROM orders ORDER BY id", self._db)
