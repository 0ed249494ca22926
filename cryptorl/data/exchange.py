"""Exchange OHLCV through ccxt's unified API (``fetch_ohlcv``), into the prices store.

:func:`fetch_market` downloads closed bars of one asset from any ccxt exchange (default
``binance``) at any timeframe the exchange offers, page by page from ``start`` to ``end``:

* the exchange's rate limit is respected (``enableRateLimit``: ccxt spaces the calls by
  ``exchange.rateLimit``);
* ``NetworkError`` / ``RateLimitExceeded`` / ``ExchangeNotAvailable`` (and ccxt's other temporary
  errors, :data:`RETRYABLE`) are retried with exponential backoff;
* each page is validated and stored in its own transaction, together with a fetch-log entry, so
  an interrupted download resumes after the last stored page (:meth:`DataStore.covered_until`);
* the still-open last candle is dropped: only closed bars are stored.

The asset ``BTC`` maps to the symbol ``BTC/USDT`` (``quote`` configurable, or pass ``symbol``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import ccxt
import pandas as pd
from tqdm.auto import tqdm

from .frames import OHLCV, DataError, Gap, interval_seconds, to_utc_timestamp
from .retry import Backoff, FetchError
from .store import DataStore

log = logging.getLogger(__name__)

DEFAULT_EXCHANGE = "binance"
DEFAULT_QUOTE = "USDT"
RETRYABLE = (ccxt.NetworkError, ccxt.RateLimitExceeded, ccxt.ExchangeNotAvailable, ccxt.OperationFailed)
"""Errors worth retrying: ccxt's network errors (rate limit, DDoS protection, exchange not available,
timeouts) and ``OperationFailed``, ccxt's class for "temporary, retry later" (e.g. Binance -1001)."""


@dataclass
class MarketFetch:
    """What one :func:`fetch_market` call did."""

    asset: str
    interval: str
    exchange: str
    symbol: str
    pages: int = 0
    bars: int = 0  # closed bars received in range
    written: int = 0  # rows inserted or changed in the store
    retries: int = 0
    resumed_from: pd.Timestamp | None = None
    gaps: list[Gap] = field(default_factory=list)


def make_exchange(exchange_id: str = DEFAULT_EXCHANGE, **config) -> ccxt.Exchange:
    """A ccxt exchange instance with the rate limiter on (``config`` goes to the constructor)."""
    if exchange_id not in ccxt.exchanges:
        raise ValueError(f"unknown exchange id {exchange_id!r}: use one of ccxt.exchanges (e.g. 'binance', 'kraken', 'okx')")
    return getattr(ccxt, exchange_id)({"enableRateLimit": True, **config})


def symbol_for(asset: str, quote: str = DEFAULT_QUOTE) -> str:
    """The exchange symbol of a ticker: ``BTC`` -> ``BTC/USDT``."""
    return f"{asset.strip().upper()}/{quote.strip().upper()}"


def page_limit(exchange: ccxt.Exchange, default: int = 500) -> int:
    """Largest number of candles the exchange returns per call (ccxt's ``features``), else ``default``."""
    try:
        limit = exchange.features["spot"]["fetchOHLCV"]["limit"]
    except (KeyError, TypeError, AttributeError):
        limit = None
    return int(limit) if limit else default


def check_timeframe(exchange: ccxt.Exchange, interval: str) -> None:
    """Raise ValueError unless ``exchange`` serves OHLCV at ``interval`` and the store can hold it."""
    if not exchange.has.get("fetchOHLCV"):
        raise ValueError(f"{exchange.id} does not serve OHLCV candles through ccxt")
    offered = list((exchange.timeframes or {}).keys())
    if interval not in offered:
        raise ValueError(f"{exchange.id} does not offer timeframe {interval!r}; it offers {', '.join(offered) or 'none'}")
    interval_seconds(interval)  # e.g. '1M' (calendar month) is not a fixed-length bar


def _frame(rows: list[list]) -> pd.DataFrame:
    df = pd.DataFrame([r[:6] for r in rows], columns=["time", *OHLCV])
    df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("time").astype("int64"), unit="ms", utc=True), name="time")
    return df


def fetch_market(
    store: DataStore,
    asset: str,
    interval: str = "1d",
    start: str | pd.Timestamp = "2020-10-01",
    end: str | pd.Timestamp | None = None,
    *,
    exchange: str | ccxt.Exchange = DEFAULT_EXCHANGE,
    quote: str = DEFAULT_QUOTE,
    symbol: str | None = None,
    limit: int | None = None,
    backoff: Backoff | None = None,
    now: Callable[[], int] | None = None,
    progress: bool = True,
    replace: bool = False,
) -> MarketFetch:
    """Download closed ``interval`` bars of ``asset`` with open time in ``[start, end]`` into ``store``.

    ``exchange`` is a ccxt id or instance; ``limit`` the candles per call (default: the
    exchange's maximum); ``now()`` gives the current time in ms (default: the exchange clock) to
    decide which candle is still open. Resumes from the fetch log when part of the range is stored.
    ``replace=True`` lets these bars replace a series stored from another source.
    """
    ex = make_exchange(exchange) if isinstance(exchange, str) else exchange
    check_timeframe(ex, interval)
    asset = asset.strip().upper()
    symbol = symbol or symbol_for(asset, quote)
    backoff = backoff or Backoff()
    now_ms = (now or ex.milliseconds)()
    step = interval_seconds(interval) * 1000
    start_ts = to_utc_timestamp(start)
    end_ts = to_utc_timestamp(end) if end is not None else pd.Timestamp(now_ms, unit="ms", tz="UTC")
    if end_ts < start_ts:
        raise DataError(asset, f"empty range: end {end_ts} is before start {start_ts}")
    start_ms, end_ms = start_ts.value // 1_000_000, end_ts.value // 1_000_000
    end_ms = min(end_ms, now_ms - step)  # a bar opened later than this is still open at `now`

    def call(fn, what):
        return backoff.call(fn, f"{ex.id} {what}", RETRYABLE)

    try:
        call(ex.load_markets, "load_markets")
    except ccxt.BaseError as exc:  # not a network error: bad exchange answer
        raise FetchError(f"{ex.id} load_markets failed: {type(exc).__name__}: {exc}") from None
    if symbol not in ex.markets:
        raise ValueError(f"{ex.id} has no market {symbol!r} (asset {asset}, quote {quote}); pass quote= or symbol=")

    source = f"{ex.id}:{symbol}"
    report = MarketFetch(asset, interval, ex.id, symbol)
    done = store.covered_until("prices", asset, interval, source, symbol, start_ts)
    since = start_ms
    if done is not None:
        since = max(start_ms, done.value // 1_000_000 + step)
        report.resumed_from = pd.Timestamp(since, unit="ms", tz="UTC")
        log.info("[%s] resuming %s %s download at %s", asset, ex.id, interval, report.resumed_from)
    limit = limit or page_limit(ex)
    total = max(0, (end_ms - start_ms) // step + 1)
    with tqdm(total=total, initial=min(total, max(0, (since - start_ms) // step)), unit="bar",
              desc=f"{asset} {interval} {ex.id}", disable=not progress, leave=False) as bar:
        run_from = since
        while since <= end_ms:
            try:
                page = call(lambda since=since: ex.fetch_ohlcv(symbol, interval, since=since, limit=limit), f"fetch_ohlcv {symbol}")
            except ccxt.BaseError as exc:
                raise FetchError(f"{ex.id} fetch_ohlcv {symbol} {interval}: {type(exc).__name__}: {exc}") from None
            report.pages += 1
            rows = [r for r in page if since <= r[0] <= end_ms]  # in range, closed bars only
            if not rows:  # nothing closed in [since, end]: the source has no more bars in range
                if not page or any(r[0] > end_ms for r in page):
                    store.record_coverage("prices", asset, interval, source, symbol, pd.Timestamp(run_from, unit="ms", tz="UTC"),
                                          pd.Timestamp(end_ms, unit="ms", tz="UTC"))
                break
            covered = (symbol, pd.Timestamp(run_from, unit="ms", tz="UTC"), pd.Timestamp(rows[-1][0], unit="ms", tz="UTC"))
            report.written += store.upsert_market(asset, interval, _frame(rows), source, covered=covered, replace=replace)
            report.bars += len(rows)
            bar.update(min(len(rows), bar.total - bar.n) if bar.total else len(rows))
            next_since = rows[-1][0] + step
            if next_since <= since:  # pragma: no cover - an exchange ignoring `since`
                break
            since = next_since
    report.retries = backoff.used
    report.gaps = store.gaps(asset, interval, start_ts, end_ts)
    return report


__all__ = [
    "DEFAULT_EXCHANGE",
    "DEFAULT_QUOTE",
    "RETRYABLE",
    "MarketFetch",
    "check_timeframe",
    "fetch_market",
    "make_exchange",
    "page_limit",
    "symbol_for",
]
