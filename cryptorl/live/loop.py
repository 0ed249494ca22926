"""The Live Trading Unit's loop: at each interval close, decide, plan and place orders once.

``LiveTrader.run_once(now)`` acts on the last **closed** interval only: for bar size ``iv`` the
bar that opened at ``bar_time = floor(now, iv) - iv`` closed at ``close_time = floor(now, iv)``.

1. already done for this interval (journal) -> nothing to do;
2. kill-switch file present -> nothing is placed (and nothing is flattened);
3. an interrupted run of this interval (crash, restart) -> its stored plan is resumed: every
   order not known to be placed is looked up on the exchange by client order id, and only the
   missing ones are sent;
4. otherwise ``prepare(bar_time)`` (paper trading: feed the closed bar to the paper account),
   ``decide(bar_time)`` -> target weights, :func:`~cryptorl.live.orders.plan_orders`, the plan
   is journaled, then :class:`~cryptorl.live.executor.Executor` places it.

``run_forever()`` repeats this after each close (plus a settle delay), with an injectable clock.
Paper trading is the default: a real exchange is refused unless ``live=True``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import ccxt
import pandas as pd

from cryptorl.data.frames import interval_timedelta, to_utc_timestamp

from .executor import ExecutionReport, Executor, Journal, Limits
from .feed import BarsNotReady
from .orders import OrderPlan, PlannedOrder, plan_orders, target_weights
from .paper import PaperExchange

log = logging.getLogger("cryptorl.live")


class Clock(Protocol):
    def now(self) -> pd.Timestamp: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> pd.Timestamp:
        return pd.Timestamp.now(tz="UTC")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def check_interval(interval: str) -> pd.Timedelta:
    """The bar size, if the loop supports it: bars that tile the UTC day (1m .. 1d)."""
    step = interval_timedelta(interval)
    if pd.Timedelta(days=1) % step != pd.Timedelta(0):
        raise ValueError(
            f"interval {interval!r} does not divide the UTC day; the live loop supports e.g. 15m, 1h, 6h, 1d"
        )
    return step


def last_closed(now: Any, interval: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``(bar_time, close_time)`` of the last bar closed at ``now`` (bars tile the UTC day)."""
    step = check_interval(interval)
    close = to_utc_timestamp(now).floor(step)
    return close - step, close


@dataclass
class RunReport:
    """What one ``run_once`` did."""

    bar_time: pd.Timestamp
    close_time: pd.Timestamp
    status: str  # done | already-done | killed | incomplete
    target: dict[str, float] | None = None
    plan: OrderPlan | None = None
    execution: ExecutionReport | None = None
    resumed: bool = False
    orders: list[PlannedOrder] = field(default_factory=list)

    def summary(self) -> str:
        head = (
            f"interval closed {self.close_time:%Y-%m-%d %H:%M} UTC (bar {self.bar_time:%Y-%m-%d %H:%M}): {self.status}"
        )
        lines = [head + (" (resumed after a restart)" if self.resumed else "")]
        if self.plan is not None:
            lines.append(self.plan.summary())
        ex = self.execution
        if ex is not None:
            lines.append(
                f"  placed {len(ex.placed)}, already on the exchange {len(ex.existing)}, "
                f"refused {len(ex.refused)}, rejected {len(ex.rejected)}, failed {len(ex.failed)}"
                + (", KILLED" if ex.killed else "")
            )
            for o, why in ex.refused + ex.rejected + ex.failed:
                lines.append(f"  not placed: {o.side} {o.amount} {o.symbol}: {why}")
        return "\n".join(lines)


class LiveTrader:
    """Turn a decision function into orders on ``exchange`` at every interval close.

    Parameters
    ----------
    decide:
        ``decide(bar_time) -> {asset: weight}``; ``bar_time`` is the open time of the last closed
        bar (use data with index ``<= bar_time`` only); cash is ``1 - sum(weights)``.
    exchange:
        A :class:`~cryptorl.live.paper.PaperExchange` (default usage) or, with ``live=True``, a
        ccxt exchange holding API keys (see :func:`~cryptorl.live.connect.live_exchange`).
    assets:
        The portfolio's assets (``["BTC", "ETH"]``), traded against ``quote``.
    interval, portfolio_id, journal_path, kill_switch_path, limits:
        Bar size; the portfolio's name (its runs in the journal; client order ids are per account and
        interval close, see :func:`~cryptorl.live.orders.account_id`); the SQLite journal; the
        file whose presence stops all order placement; :class:`~cryptorl.live.executor.Limits`.
    clock:
        ``now()`` / ``sleep(seconds)``; :class:`SystemClock` by default, a fake one in tests.
    prepare:
        Called with ``bar_time`` before deciding (paper trading: feed the bar to the account).
    fee_rate, price_buffer:
        Buys are sized so that cost x (1 + fee_rate + price_buffer) fits the available cash.
    settle_seconds, retry_seconds:
        ``run_forever`` acts this long after each close; retries an incomplete interval (network
        error, bar not yet published) after ``retry_seconds``.
    """

    def __init__(
        self,
        decide: Callable[[pd.Timestamp], dict[str, float]],
        exchange: Any,
        *,
        assets: Sequence[str],
        interval: str,
        portfolio_id: str,
        journal_path: str | Path,
        kill_switch_path: str | Path | None = None,
        limits: Limits | None = None,
        clock: Clock | None = None,
        quote: str = "USDT",
        prepare: Callable[[pd.Timestamp], None] | None = None,
        fee_rate: float = 0.001,
        price_buffer: float = 0.002,
        settle_seconds: float = 5.0,
        retry_seconds: float = 60.0,
        live: bool = False,
    ):
        if not isinstance(exchange, PaperExchange) and not live:
            raise ValueError(
                f"{getattr(exchange, 'id', exchange)!r} is a real exchange: paper trading is the default; "
                "pass live=True (CLI: --live) to place real orders"
            )
        if not assets:
            raise ValueError("the portfolio needs at least one asset")
        if not str(portfolio_id).strip():
            raise ValueError("portfolio_id must be a non-empty string")
        self.decide = decide
        self.exchange = exchange
        self.assets = [a.upper() for a in assets]
        self.interval = interval
        self.step = check_interval(interval)
        self.portfolio_id = str(portfolio_id)
        self.quote = quote.upper()
        self.journal = Journal(journal_path)
        self.executor = Executor(exchange, self.journal, limits=limits, kill_switch_path=kill_switch_path)
        self.clock = clock or SystemClock()
        self.prepare = prepare
        self.fee_rate, self.price_buffer = fee_rate, price_buffer
        self.settle_seconds, self.retry_seconds = settle_seconds, retry_seconds
        self.live = live

    def run_once(self, now: Any = None) -> RunReport:
        """Act on the interval that closed last before ``now`` (default: the clock's now)."""
        bar_time, close_time = last_closed(self.clock.now() if now is None else now, self.interval)
        report = RunReport(bar_time, close_time, "done")
        if self.journal.run_status(self.portfolio_id, close_time) == "done":
            report.status = "already-done"
            log.debug("interval %s already done for %s", close_time, self.portfolio_id)
            return report
        if self.executor.killed():
            log.warning(
                "kill switch %s is present: placing no orders for the interval closed %s "
                "(positions are left as they are; nothing is flattened)",
                self.executor.kill_switch_path,
                close_time,
            )
            self.journal.set_run(self.portfolio_id, close_time, "killed", "kill switch present")
            report.status = "killed"
            return report
        orders = self.journal.stored_orders(self.portfolio_id, close_time)
        if orders or self.journal.run_status(self.portfolio_id, close_time) in ("planned", "incomplete"):
            report.resumed = True
            log.info("resuming the interval closed %s: %d order(s) in the journal", close_time, len(orders))
        else:
            if self.prepare is not None:
                self.prepare(bar_time)
            target = target_weights(self.decide(bar_time), self.assets)
            report.target = target
            plan = plan_orders(
                self.exchange,
                target,
                assets=self.assets,
                portfolio_id=self.portfolio_id,
                close_time=close_time,
                quote=self.quote,
                fee_rate=self.fee_rate,
                price_buffer=self.price_buffer,
            )
            report.plan = plan
            for s in plan.skipped:
                log.info("skipped %s %s %s: %s", s.side, s.amount, s.symbol, s.reason)
            self.journal.save_plan(plan)
            orders = plan.orders
        report.orders = list(orders)
        execution = self.executor.execute(orders, portfolio_id=self.portfolio_id, close_time=close_time)
        report.execution = execution
        report.status = "done" if execution.complete else ("killed" if execution.killed else "incomplete")
        self.journal.set_run(self.portfolio_id, close_time, report.status)
        log.info("%s", report.summary())
        return report

    def run_forever(self, max_runs: int | None = None) -> None:
        """Act at every interval close (plus ``settle_seconds``) until interrupted.

        Network errors and bars not yet published are retried after ``retry_seconds`` within
        the interval; other errors stop the loop (a restart resumes from the journal).
        """
        runs = 0
        while max_runs is None or runs < max_runs:
            now = self.clock.now()
            runs += 1
            try:
                report = self.run_once(now)
            except (ccxt.NetworkError, BarsNotReady) as exc:
                log.warning(
                    "interval not completed (%s: %s); retrying in %.0f s", type(exc).__name__, exc, self.retry_seconds
                )
                self.clock.sleep(self.retry_seconds)
                continue
            if report.status == "incomplete":
                self.clock.sleep(self.retry_seconds)
                continue
            _, close = last_closed(now, self.interval)
            wait = (close + self.step + pd.Timedelta(seconds=self.settle_seconds) - self.clock.now()).total_seconds()
            log.info("next interval closes %s; sleeping %.0f s", close + self.step, max(wait, 0.0))
            self.clock.sleep(max(wait, 0.0))
