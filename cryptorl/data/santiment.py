"""On-chain and social metrics through sanpy (Santiment's GraphQL API), into the metrics store.

:func:`fetch_metrics` discovers the metrics Santiment offers for an asset's slug
(``san.available_metrics_for_slug``), fetches each one with ``san.get(metric, slug=...,
from_date=..., to_date=..., interval=...)`` in chunks, and stores each chunk as it comes (one
transaction, with a fetch-log entry, so an interrupted run resumes per metric).

* A metric the subscription plan refuses (Santiment's "not accessible with the currently used
  ... subscription" error), or that Santiment cannot serve for this slug/interval, is recorded
  in the store's ``refused`` table with the reason; the other metrics go on.
* Rate-limit replies wait for Santiment's "Try again in N seconds", network and server errors
  back off exponentially; a rejected API key stops the run (retrying cannot fix it).
* The API key is read from the ``SANPY_APIKEY`` environment variable at call time only, set on
  ``san.ApiConfig.api_key`` for the duration of the call, and scrubbed from every message this
  module logs, stores or raises. It is never written anywhere.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd
import san
import san.error
from san.utility import rate_limit_time_left
from tqdm.auto import tqdm

from .frames import DataError, interval_seconds, to_utc_timestamp
from .retry import Backoff, FetchError, _first_line
from .store import DataStore

log = logging.getLogger(__name__)

API_KEY_ENV = "SANPY_APIKEY"
SOURCE = "santiment"

SLUGS: dict[str, str] = {
    "BTC": "bitcoin",
    "ETH": "ethereum",
    "LINK": "chainlink",
    "LTC": "litecoin",
    "XRP": "xrp",
    "BCH": "bitcoin-cash",
    "ETC": "ethereum-classic",
    "DOGE": "dogecoin",
    "ADA": "cardano",
    "BNB": "binance-coin",
    "SOL": "solana",
    "DOT": "polkadot-new",
    "MATIC": "matic-network",
    "AVAX": "avalanche",
    "TRX": "tron",
    "XLM": "stellar",
    "UNI": "uniswap",
    "ATOM": "cosmos",
}
"""Ticker -> Santiment slug. Override per call with ``slugs=`` (Santiment renames slugs at times)."""

RETRYABLE = (san.error.SanNetworkError, san.error.SanServerError, san.error.SanRateLimitError, san.error.SanTransportError)
_REFUSAL_MARKERS = ("not accessible", "subscription", "upgrade", "restricted", "not allowed", "access")


@dataclass
class MetricsFetch:
    """What one :func:`fetch_metrics` call did."""

    asset: str
    slug: str
    interval: str
    available: list[str] = field(default_factory=list)
    fetched: dict[str, int] = field(default_factory=dict)  # metric -> values received
    refused: dict[str, str] = field(default_factory=dict)  # metric -> reason
    written: int = 0
    requests: int = 0
    retries: int = 0


def slug_for(asset: str, slugs: Mapping[str, str] | None = None) -> str:
    """Santiment slug of a ticker (``BTC`` -> ``bitcoin``); unknown tickers raise ValueError."""
    table = {**SLUGS, **{k.upper(): v for k, v in (slugs or {}).items()}}
    try:
        return table[asset.strip().upper()]
    except KeyError:
        raise ValueError(f"no Santiment slug known for {asset!r}: pass slugs={{'{asset.upper()}': '<slug>'}}") from None


def _scrub(text: object, key: str | None) -> str:
    text = str(text)
    return text.replace(key, "***") if key else text


def _reason(exc: BaseException, key: str | None) -> str:
    """The useful part of a sanpy error (its message repeats the whole GraphQL query)."""
    text = _scrub(exc, key)
    if "errors:" in text:  # a GraphQL error: "... query {...} \n errors: <message>"
        return _first_line(text.split("errors:", 1)[1])
    lines = [s.strip() for s in text.splitlines() if s.strip()]
    if len(lines) > 1 and lines[0].startswith("Error running query. Status code"):  # an HTTP error + its details
        return _first_line(f"{lines[0]} {lines[1]}")
    return _first_line(text)


def is_refusal(exc: BaseException) -> bool:
    """True for Santiment's 'metric not in your plan' errors."""
    text = str(exc).lower()
    return isinstance(exc, san.error.SanGraphqlQueryError) and any(m in text for m in _REFUSAL_MARKERS)


@contextmanager
def _api_key(key: str | None) -> Iterator[None]:
    old = san.ApiConfig.api_key
    san.ApiConfig.api_key = key
    try:
        yield
    finally:
        san.ApiConfig.api_key = old


def _chunks(start: pd.Timestamp, end: pd.Timestamp, step: pd.Timedelta, points: int) -> Iterator[tuple[pd.Timestamp, pd.Timestamp]]:
    a = start
    while a <= end:
        b = min(end, a + step * (points - 1))
        yield a, b
        a = b + step


def _series(df: pd.DataFrame, metric: str, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.DataFrame:
    """sanpy's frame (``datetime`` index, ``value`` column) as a one-metric frame within [lo, hi]."""
    if df is None or df.empty or "value" not in df.columns:
        return pd.DataFrame({metric: pd.Series(dtype="float64")}, index=pd.DatetimeIndex([], tz="UTC", name="time"))
    out = pd.DataFrame({metric: pd.to_numeric(df["value"], errors="coerce").astype("float64")})
    out.index = pd.DatetimeIndex(pd.to_datetime(df.index, utc=True), name="time")
    return out[(out.index >= lo) & (out.index <= hi)]


def _get(metric: str, slug: str, lo: pd.Timestamp, hi: pd.Timestamp, interval: str) -> pd.DataFrame:
    with warnings.catch_warnings():  # sanpy's own pandas deprecation notices are not the user's business
        warnings.filterwarnings("ignore", message="The inplace keyword", module=r"san\.")
        return san.get(metric, slug=slug, from_date=lo.isoformat(), to_date=hi.isoformat(), interval=interval)


def fetch_metrics(
    store: DataStore,
    asset: str,
    interval: str = "1d",
    start: str | pd.Timestamp = "2020-10-01",
    end: str | pd.Timestamp | None = None,
    *,
    metrics: Sequence[str] | None = None,
    slug: str | None = None,
    slugs: Mapping[str, str] | None = None,
    max_points: int = 5000,
    backoff: Backoff | None = None,
    progress: bool = True,
    api_key_env: str = API_KEY_ENV,
    replace: bool = False,
) -> MetricsFetch:
    """Fetch Santiment metrics of ``asset`` (all the slug offers, or ``metrics``) into ``store``.

    Every request covers at most ``max_points`` intervals. Metrics refused by the plan are
    recorded in ``store.refused()``; a metric that succeeds later is cleared from it.
    ``replace=True`` lets a metric replace the same metric stored from another source.
    """
    asset = asset.strip().upper()
    slug = slug or slug_for(asset, slugs)
    interval_seconds(interval)
    step = pd.Timedelta(seconds=interval_seconds(interval))
    start_ts = to_utc_timestamp(start)
    end_ts = to_utc_timestamp(end) if end is not None else pd.Timestamp.now(tz="UTC").floor(step) - step
    if end_ts < start_ts:
        raise DataError(asset, f"empty range: end {end_ts} is before start {start_ts}")
    key = os.environ.get(api_key_env) or None
    if key is None:
        log.info("%s is not set: Santiment serves only its free metrics", api_key_env)
    backoff = backoff or Backoff()
    report = MetricsFetch(asset, slug, interval)

    def wait_for(exc: BaseException) -> float | None:
        try:
            return float(rate_limit_time_left(exc)) if isinstance(exc, san.error.SanRateLimitError) else None
        except san.error.SanError:
            return None

    def call(fn: Callable, what: str):
        report.requests += 1
        try:
            return backoff.call(fn, f"santiment {what}", RETRYABLE, wait_for=wait_for, describe=lambda e: _scrub(e, key))
        except san.error.SanAuthError as exc:
            raise FetchError(f"Santiment rejected the API key from ${api_key_env}: {_reason(exc, key)}") from None

    with _api_key(key):
        try:
            available = list(call(lambda: san.available_metrics_for_slug(slug), f"available metrics of {slug}"))
        except san.error.SanError as exc:
            raise FetchError(f"Santiment has no metrics for slug {slug!r} (asset {asset}): {_reason(exc, key)}") from None
        report.available = available
        wanted = list(metrics) if metrics is not None else available
        for name in wanted:
            if name not in available:
                report.refused[name] = f"not offered for slug {slug}"
                store.record_refused(asset, interval, name, report.refused[name], SOURCE)
        todo = [m for m in wanted if m in available]
        for metric in tqdm(todo, desc=f"{asset} santiment {interval}", unit="metric", disable=not progress, leave=False):
            done = store.covered_until("metrics", asset, interval, SOURCE, f"{slug}:{metric}", start_ts)
            since = start_ts if done is None else max(start_ts, done + step)
            received = 0
            try:
                for lo, hi in _chunks(since, end_ts, step, max_points):
                    raw = call(lambda m=metric, a=lo, b=hi: _get(m, slug, a, b + step - pd.Timedelta(seconds=1), interval),
                               f"{metric}/{slug}")
                    frame = _series(raw, metric, lo, hi)
                    received += int(frame[metric].notna().sum())
                    report.written += store.upsert_metrics(asset, interval, frame, SOURCE, covered=(f"{slug}:{metric}", since, hi), replace=replace)
            except (san.error.SanError, DataError) as exc:
                reason = _reason(exc, key)
                kind = "refused by the plan" if is_refusal(exc) else "invalid data" if isinstance(exc, DataError) else "error"
                report.refused[metric] = f"{kind}: {reason}"
                store.record_refused(asset, interval, metric, report.refused[metric], SOURCE)
                log.warning("[%s] santiment %s %s: %s", asset, metric, kind, reason)
                continue
            report.fetched[metric] = received
            store.clear_refused(asset, interval, metric)
    report.retries = backoff.used
    return report


__all__ = ["API_KEY_ENV", "SLUGS", "SOURCE", "MetricsFetch", "fetch_metrics", "is_refusal", "slug_for"]
