"""Send an order plan through any ccxt-unified exchange, at most once per client order id.

Safety, in the order it is applied to every order:

1. **Kill switch**: while the kill-switch file exists nothing is placed (and nothing is
   flattened: positions stay as they are). It is checked before the run and before each order.
2. **Journal** (SQLite): every intended order is written down before anything is sent; its
   status moves ``intended -> sending -> placed``; or ``skipped`` (below the market's minimums),
   ``refused`` (our limits), ``rejected`` (the exchange said no: final for the interval) or
   ``failed`` (network trouble, the order is not on the exchange: retried by a later run).
3. **Look-up before placing**: an order not marked ``placed`` is looked up on the exchange by
   its client order id (``fetch_order`` with ``clientOrderId``, else a scan of
   ``fetch_open_orders``/``fetch_orders``), so a crash after the exchange accepted an order but
   before the journal heard about it never leads to a second order.
4. **Limits**: orders above ``max_order_notional`` and orders that would take the day's
   (UTC calendar day of the interval close) traded notional above ``max_daily_turnover`` are
   refused with a log line. When a sell is not placed, the buys of that interval, which count
   on its proceeds, are held back too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ccxt
import pandas as pd

from cryptorl._sqlite import connect, transaction
from cryptorl.data.frames import to_utc_timestamp

from .orders import OrderPlan, PlannedOrder, SkippedOrder

log = logging.getLogger("cryptorl.live")

PLACED = "placed"
FINAL = ("refused", "rejected")


@dataclass(frozen=True)
class Limits:
    """Hard limits in the quote currency; ``None`` means no limit."""

    max_order_notional: float | None = None
    max_daily_turnover: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_order_notional", "max_daily_turnover"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 or None, got {value!r}")


def _iso(ts: Any) -> str:
    return to_utc_timestamp(ts).isoformat()


def _now_iso() -> str:
    return pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")


class Journal:
    """SQLite record of runs (one per portfolio and interval) and of every intended order."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db = connect(self.path)
        with self._tx():
            self._db.execute(
                """CREATE TABLE IF NOT EXISTS runs (
                    portfolio_id TEXT NOT NULL, close_time TEXT NOT NULL, status TEXT NOT NULL,
                    target TEXT, value REAL, message TEXT, started_at TEXT, updated_at TEXT,
                    PRIMARY KEY (portfolio_id, close_time))"""
            )
            self._db.execute(
                """CREATE TABLE IF NOT EXISTS orders (
                    client_order_id TEXT PRIMARY KEY, portfolio_id TEXT NOT NULL,
                    close_time TEXT NOT NULL, seq INTEGER NOT NULL, asset TEXT NOT NULL,
                    symbol TEXT NOT NULL, side TEXT NOT NULL, amount REAL NOT NULL,
                    price REAL NOT NULL, notional REAL NOT NULL, status TEXT NOT NULL,
                    exchange_order_id TEXT, message TEXT, created_at TEXT, updated_at TEXT)"""
            )

    def _tx(self) -> transaction:
        return transaction(self._db)

    def close(self) -> None:
        self._db.close()

    # runs ------------------------------------------------------------------------------------
    def run_status(self, portfolio_id: str, close_time: Any) -> str | None:
        row = self._db.execute(
            "SELECT status FROM runs WHERE portfolio_id=? AND close_time=?", (portfolio_id, _iso(close_time))
        ).fetchone()
        return None if row is None else row["status"]

    def set_run(self, portfolio_id: str, close_time: Any, status: str, message: str = "") -> None:
        now = _now_iso()
        with self._tx():
            self._db.execute(
                """INSERT INTO runs (portfolio_id, close_time, status, message, started_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (portfolio_id, close_time)
                   DO UPDATE SET status=excluded.status, message=excluded.message, updated_at=excluded.updated_at""",
                (portfolio_id, _iso(close_time), status, message, now, now),
            )

    def runs(self, portfolio_id: str | None = None) -> pd.DataFrame:
        sql, args = "SELECT * FROM runs", ()
        if portfolio_id is not None:
            sql, args = sql + " WHERE portfolio_id=?", (portfolio_id,)
        return pd.read_sql_query(sql + " ORDER BY close_time", self._db, params=args)

    # orders ----------------------------------------------------------------------------------
    def save_plan(self, plan: OrderPlan) -> None:
        """Write the plan (intended and skipped orders) in one transaction, before sending any."""
        now = _now_iso()
        close = _iso(plan.close_time)
        with self._tx():
            self._db.execute(
                """INSERT INTO runs (portfolio_id, close_time, status, target, value, message, started_at, updated_at)
                   VALUES (?, ?, 'planned', ?, ?, '', ?, ?)
                   ON CONFLICT (portfolio_id, close_time)
                   DO UPDATE SET status='planned', target=excluded.target, value=excluded.value,
                                 updated_at=excluded.updated_at""",
                (plan.portfolio_id, close, json.dumps(plan.target), plan.value, now, now),
            )
            rows = [(o, "intended", "") for o in plan.orders] + [(s, "skipped", s.reason) for s in plan.skipped]
            for seq, (o, status, message) in enumerate(rows):
                cid = (
                    o.client_order_id if isinstance(o, PlannedOrder) else f"skip:{plan.portfolio_id}:{close}:{o.asset}"
                )
                self._db.execute(
                    """INSERT OR IGNORE INTO orders (client_order_id, portfolio_id, close_time, seq, asset,
                       symbol, side, amount, price, notional, status, message, created_at, updated_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (
                        cid,
                        plan.portfolio_id,
                        close,
                        seq,
                        o.asset,
                        o.symbol,
                        o.side,
                        o.amount,
                        _price_of(o),
                        o.notional,
                        status,
                        message,
                        now,
                        now,
                    ),
                )

    def stored_orders(self, portfolio_id: str, close_time: Any) -> list[PlannedOrder]:
        """The orders planned for this interval, in plan order (sells first); [] when none."""
        rows = self._db.execute(
            "SELECT * FROM orders WHERE portfolio_id=? AND close_time=? AND status!='skipped' ORDER BY seq",
            (portfolio_id, _iso(close_time)),
        ).fetchall()
        return [
            PlannedOrder(r["asset"], r["symbol"], r["side"], r["amount"], r["price"], r["client_order_id"])
            for r in rows
        ]

    def order_status(self, client_order_id: str) -> str | None:
        row = self._db.execute("SELECT status FROM orders WHERE client_order_id=?", (client_order_id,)).fetchone()
        return None if row is None else row["status"]

    def mark(
        self, client_order_id: str, status: str, *, exchange_order_id: str | None = None, message: str = ""
    ) -> None:
        with self._tx():
            self._db.execute(
                """UPDATE orders SET status=?, exchange_order_id=COALESCE(?, exchange_order_id),
                   message=?, updated_at=? WHERE client_order_id=?""",
                (status, exchange_order_id, message, _now_iso(), client_order_id),
            )

    def turnover(self, portfolio_id: str, day: Any) -> float:
        """Notional of orders placed for interval closes on the UTC calendar day of ``day``."""
        start = to_utc_timestamp(day).normalize()
        end = start + pd.Timedelta(days=1)
        row = self._db.execute(
            """SELECT COALESCE(SUM(notional), 0) AS n FROM orders
               WHERE portfolio_id=? AND status=? AND close_time>=? AND close_time<?""",
            (portfolio_id, PLACED, start.isoformat(), end.isoformat()),
        ).fetchone()
        return float(row["n"])

    def orders(self, portfolio_id: str | None = None) -> pd.DataFrame:
        sql, args = "SELECT * FROM orders", ()
        if portfolio_id is not None:
            sql, args = sql + " WHERE portfolio_id=?", (portfolio_id,)
        return pd.read_sql_query(sql + " ORDER BY close_time, seq", self._db, params=args)


def _price_of(o: PlannedOrder | SkippedOrder) -> float:
    if isinstance(o, PlannedOrder):
        return o.price
    return o.notional / o.amount if o.amount > 0 else 0.0


def find_order(exchange: Any, symbol: str, client_order_id: str, *, since: int | None = None) -> dict | None:
    """The exchange's order with this client order id, or None when it has none.

    Tries ``fetch_order(None, symbol, {"clientOrderId": ...})`` (Binance and many others answer
    it, and ``OrderNotFound`` is then authoritative); otherwise scans ``fetch_open_orders`` and
    ``fetch_orders`` / ``fetch_closed_orders`` since ``since`` (ms).
    """
    has = getattr(exchange, "has", {}) or {}
    if has.get("fetchOrder"):
        try:
            order = exchange.fetch_order(None, symbol, {"clientOrderId": client_order_id})
            if order and order.get("clientOrderId") == client_order_id:
                return order
        except ccxt.OrderNotFound:
            return None
        except (ccxt.NotSupported, ccxt.ArgumentsRequired, ccxt.BadRequest):
            pass  # this exchange cannot look orders up by client id: scan instead
    for name, method in (
        ("fetchOpenOrders", "fetch_open_orders"),
        ("fetchOrders", "fetch_orders"),
        ("fetchClosedOrders", "fetch_closed_orders"),
    ):
        if has.get(name):
            for order in getattr(exchange, method)(symbol, since):
                if order.get("clientOrderId") == client_order_id:
                    return order
    return None


@dataclass
class ExecutionReport:
    """What happened to each order of one interval."""

    placed: list[PlannedOrder] = field(default_factory=list)
    existing: list[PlannedOrder] = field(default_factory=list)  # found already placed (restart)
    refused: list[tuple[PlannedOrder, str]] = field(default_factory=list)  # by our limits
    rejected: list[tuple[PlannedOrder, str]] = field(default_factory=list)  # by the exchange
    failed: list[tuple[PlannedOrder, str]] = field(default_factory=list)  # network: retry later
    killed: bool = False
    exchange_orders: dict[str, dict] = field(default_factory=dict)  # client id -> ccxt order

    @property
    def complete(self) -> bool:
        """True when nothing is left to retry in this interval (no failure, no kill switch)."""
        return not self.failed and not self.killed


class Executor:
    """Place planned orders on ``exchange`` once each, within ``limits``, unless killed."""

    def __init__(
        self,
        exchange: Any,
        journal: Journal,
        *,
        limits: Limits | None = None,
        kill_switch_path: str | Path | None = None,
    ):
        self.exchange = exchange
        self.journal = journal
        self.limits = limits or Limits()
        self.kill_switch_path = Path(kill_switch_path) if kill_switch_path else None
        has = getattr(exchange, "has", {}) or {}
        if not any(has.get(k) for k in ("fetchOrder", "fetchOrders", "fetchOpenOrders")):
            log.warning(
                "%s cannot look up orders: duplicate protection relies on the local journal only",
                getattr(exchange, "id", "exchange"),
            )

    def killed(self) -> bool:
        return self.kill_switch_path is not None and self.kill_switch_path.exists()

    def execute(self, orders: Sequence[PlannedOrder], *, portfolio_id: str, close_time: Any) -> ExecutionReport:
        """Send ``orders`` in order (sells first), skipping those already on the exchange."""
        report = ExecutionReport()
        close_ts = to_utc_timestamp(close_time)
        since = int((close_ts - pd.Timedelta(days=1)).timestamp() * 1000)
        sell_missing = False  # a sell is refused/rejected for good: buys counting on it are refused
        sell_pending = False  # a sell failed on the network: buys wait for its retry
        for order in orders:
            if self.killed():
                log.warning(
                    "kill switch %s is present: placing no more orders (nothing is flattened); %s %s %s left unsent",
                    self.kill_switch_path,
                    order.side,
                    order.amount,
                    order.symbol,
                )
                report.killed = True
                break
            status = self.journal.order_status(order.client_order_id)
            if status == PLACED:
                report.existing.append(order)
                continue
            if status in FINAL:
                getattr(report, status).append((order, f"{status} earlier in this interval"))
                sell_missing |= order.side == "sell"
                continue
            found = find_order(self.exchange, order.symbol, order.client_order_id, since=since)
            if found is not None:
                self.journal.mark(
                    order.client_order_id,
                    PLACED,
                    exchange_order_id=str(found.get("id")),
                    message="found on the exchange (sent before a restart)",
                )
                log.info(
                    "%s %s %s already on the exchange as order %s (client id %s): not sent again",
                    order.side,
                    order.amount,
                    order.symbol,
                    found.get("id"),
                    order.client_order_id,
                )
                report.existing.append(order)
                report.exchange_orders[order.client_order_id] = found
                continue
            if order.side == "buy" and sell_pending:
                report.failed.append(
                    (order, "waits for a sell of this interval that is not placed yet (network error)")
                )
                continue
            reason = self._refusal(order, portfolio_id, close_ts, sell_missing)
            if reason:
                self.journal.mark(order.client_order_id, "refused", message=reason)
                log.warning(
                    "REFUSED %s %s %s (~%.2f): %s", order.side, order.amount, order.symbol, order.notional, reason
                )
                report.refused.append((order, reason))
                sell_missing |= order.side == "sell"
                continue
            outcome, result = self._place(order, since)
            if outcome == PLACED:
                report.placed.append(order)
                report.exchange_orders[order.client_order_id] = result
            else:
                getattr(report, outcome).append((order, result))
                if order.side == "sell":
                    sell_pending |= outcome == "failed"
                    sell_missing |= outcome != "failed"
        return report

    def _refusal(
        self, order: PlannedOrder, portfolio_id: str, close_ts: pd.Timestamp, sell_missing: bool
    ) -> str | None:
        lim = self.limits
        if order.side == "buy" and sell_missing:
            return "a sell of this interval was not placed, so the buys that count on its proceeds are held back"
        if lim.max_order_notional is not None and order.notional > lim.max_order_notional:
            return f"order notional {order.notional:.2f} exceeds max_order_notional {lim.max_order_notional:.2f}"
        if lim.max_daily_turnover is not None:
            done = self.journal.turnover(portfolio_id, close_ts)
            if done + order.notional > lim.max_daily_turnover:
                return (
                    f"daily turnover would reach {done + order.notional:.2f} > max_daily_turnover "
                    f"{lim.max_daily_turnover:.2f} (already {done:.2f} on {close_ts:%Y-%m-%d})"
                )
        return None

    def _place(self, order: PlannedOrder, since: int) -> tuple[str, Any]:
        """Send one order: ``("placed", ccxt order)``, ``("rejected", why)`` or ``("failed", why)``."""
        self.journal.mark(order.client_order_id, "sending")
        try:
            placed = self.exchange.create_order(
                order.symbol, "market", order.side, order.amount, None, {"clientOrderId": order.client_order_id}
            )
        except ccxt.NetworkError as exc:  # the order may or may not have reached the exchange
            try:
                placed = find_order(self.exchange, order.symbol, order.client_order_id, since=since)
            except ccxt.NetworkError:
                placed = None
            if placed is None:
                return self._not_placed(
                    order,
                    "failed",
                    f"network error, order not on the exchange (retried by the next run): {type(exc).__name__}: {exc}",
                )
        except ccxt.AuthenticationError:
            self.journal.mark(order.client_order_id, "failed", message="authentication error")
            raise  # wrong keys or permissions: nothing else will work either
        except ccxt.BaseError as exc:
            return self._not_placed(order, "rejected", f"{type(exc).__name__}: {exc}")
        self.journal.mark(order.client_order_id, PLACED, exchange_order_id=str(placed.get("id")))
        log.info(
            "placed %s %s %s (~%.2f) as order %s, client id %s, status %s",
            order.side,
            order.amount,
            order.symbol,
            order.notional,
            placed.get("id"),
            order.client_order_id,
            placed.get("status"),
        )
        return PLACED, placed

    def _not_placed(self, order: PlannedOrder, outcome: str, message: str) -> tuple[str, str]:
        self.journal.mark(order.client_order_id, outcome, message=message)
        log.error("%s %s %s %s: %s", outcome.upper(), order.side, order.amount, order.symbol, message)
        return outcome, message
