"""Daily network data from Coin Metrics, through ``coinmetrics-api-client``, into the metrics store.

:func:`fetch_metrics` asks the catalog (``/catalog-v2/asset-metrics``) which metrics Coin Metrics
serves daily for an asset, then downloads them (``/timeseries/asset-metrics``, frequency
``1d``) in time chunks; the client follows the ``next_page_token`` pages within a chunk. Each
chunk is stored as it comes (one transaction with a fetch-log entry), so an interrupted run
resumes after the last chunk stored.

* **No key needed**: without ``COINMETRICS_API_KEY`` the client uses the free community endpoint
  (``community-api.coinmetrics.io``); with it, the pro endpoint. The key is read from the
  environment at call time and never logged or stored (the client puts it in URLs: error
  messages are scrubbed).
* **Rate limits**: the client itself waits out a 429 for the ``x-ratelimit-reset`` seconds the
  server sends; server and network errors are retried here with exponential backoff; a rejected
  key (401) stops the run; metrics the plan does not serve (403) are recorded as refused.
* **Offline**: the client's session has a connect timeout (:data:`TIMEOUT`) and hands connection
  failures straight to :func:`fetch_metrics` (the client would retry them on its own for about
  five minutes, whatever its ``max_retries``). The catalog request is the probe: when it cannot
  connect, the run stops at once with one :class:`~cryptorl.data.retry.FetchError`; a connection
  lost later is retried with the backoff like any network error.
* Metric names are normalised like the file importers' (``AdrActCnt`` -> ``adr_act_cnt``), so a
  Coin Metrics community CSV and the API give the same store. Values are daily, stamped at the
  day they cover (UTC): :func:`cryptorl.data.load_data` makes them point in time.

Coin Metrics' community data terms apply (attribution, non-commercial use).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pandas as pd
import requests
from coinmetrics._exceptions import (
    CoinMetricsClientForbiddenError,
    CoinMetricsClientUnauthorizedError,
)
from coinmetrics.api_client import CoinMetricsClient
from tqdm.auto import tqdm

from .frames import DataError, to_utc_timestamp
from .onchain import normalise
from .retry import Backoff, FetchError, _first_line
from .store import DataStore

log = logging.getLogger(__name__)

API_KEY_ENV = "COINMETRICS_API_KEY"
SOURCE = "coinmetrics"
FREQUENCY = "1d"
DAY = pd.Timedelta(days=1)
TIMEOUT = (5.0, 120.0)  # seconds: to connect, and between bytes of a reply


class Unreachable(Exception):
    """The client's request could not connect (no network, name not resolved, refused, timed out)."""

    def __init__(self, error: BaseException):
        super().__init__(_reason(error))
        self.error = error


RETRYABLE = (requests.exceptions.HTTPError, requests.exceptions.Timeout, Unreachable)


class _Session(requests.Session):
    """A :class:`requests.Session` with :data:`TIMEOUT` whose connection failures surface as
    :class:`Unreachable`: the client's own retry decorator catches ``requests.ConnectionError``
    and sleeps 30-120 s between five attempts; it lets other exceptions through."""

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", TIMEOUT)
        try:
            return super().request(method, url, **kwargs)
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise Unreachable(exc) from None


def _reason(error: BaseException) -> str:
    """The innermost reason of a connection failure, without object addresses or the URL (which may
    hold the API key): ``Failed to resolve 'community-api.coinmetrics.io' (...)``."""
    inner = error
    while True:
        nxt = getattr(inner, "reason", None) or (
            inner.args[0] if inner.args and isinstance(inner.args[0], BaseException) else None
        )
        if nxt is None or nxt is inner:
            break
        inner = nxt
    text = re.sub(r"<[^>]*>:\s*|^\w*Connection\([^)]*\):\s*", "", str(inner))  # urllib3's object prefixes
    return _first_line(_scrub(text)) or type(error).__name__


@dataclass
class CoinMetricsFetch:
    """What one :func:`fetch_metrics` call did."""

    asset: str
    available: list[str] = field(default_factory=list)  # daily metrics in the catalog
    fetched: dict[str, int] = field(default_factory=dict)  # stored name -> values received
    refused: dict[str, str] = field(default_factory=dict)
    written: int = 0
    chunks: int = 0
    retries: int = 0
    resumed_from: pd.Timestamp | None = None


def make_client(api_key_env: str = API_KEY_ENV, session: requests.Session | None = None) -> CoinMetricsClient:
    """A client on the community endpoint, or the pro one when ``$COINMETRICS_API_KEY`` is set.

    Without ``session``, one with :data:`TIMEOUT` that reports connection failures as
    :class:`Unreachable` (so that :func:`fetch_metrics` stops within seconds when offline)."""
    if session is None:
        session = _Session()
        session.headers.update({"User-Agent": "cryptorl (coinmetrics-api-client)"})
    return CoinMetricsClient(api_key=os.environ.get(api_key_env) or "", session=session)


def _scrub(text: object) -> str:
    text = str(text)
    key = os.environ.get(API_KEY_ENV)
    return text.replace(key, "***") if key else text


def available_metrics(client: CoinMetricsClient, asset: str) -> list[str]:
    """Coin Metrics' names of the metrics served daily for ``asset`` (its catalog)."""
    rows = client.catalog_asset_metrics_v2(assets=asset.lower(), format="json")
    names = []
    for row in rows:
        for m in row.get("metrics", []):
            if any(f.get("frequency") == FREQUENCY for f in m.get("frequencies", [])):
                names.append(m["metric"])
    return sorted(set(names))


def _chunks(start: pd.Timestamp, end: pd.Timestamp, days: int) -> Iterator[tuple[pd.Timestamp, pd.Timestamp]]:
    a = start
    while a <= end:
        b = min(end, a + (days - 1) * DAY)
        yield a, b
        a = b + DAY


def _frame(rows: list[dict], metrics: Sequence[str]) -> pd.DataFrame:
    """Rows ``{"asset", "time", <metric>: "<number>", ...}`` as a metrics frame (normalised names)."""
    index = pd.DatetimeIndex(pd.to_datetime([r["time"] for r in rows], utc=True, format="ISO8601"), name="time")
    data = {
        normalise(m): pd.to_numeric(pd.Series([r.get(m) for r in rows], dtype="object"), errors="coerce")
        .astype("float64")
        .to_numpy()
        for m in metrics
    }
    return pd.DataFrame(data, index=index)


def fetch_metrics(
    store: DataStore,
    asset: str,
    start: str | pd.Timestamp = "2020-01-01",
    end: str | pd.Timestamp | None = None,
    *,
    interval: str = "1d",
    metrics: Sequence[str] | None = None,
    client: CoinMetricsClient | None = None,
    chunk_days: int = 365,
    page_size: int = 10000,
    backoff: Backoff | None = None,
    progress: bool = True,
    replace: bool = False,
) -> CoinMetricsFetch:
    """Download Coin Metrics daily metrics of ``asset`` (every one its catalog lists, or ``metrics``)
    for ``[start, end]`` into ``store`` (kept under ``interval``, the bar interval they will be
    used at). Resumes after what an earlier run of the same request stored."""
    asset = asset.strip().upper()
    start_ts = to_utc_timestamp(start).floor("D")
    end_ts = (to_utc_timestamp(end) if end is not None else pd.Timestamp.now(tz="UTC")).floor("D")
    if end_ts < start_ts:
        raise DataError(asset, f"empty range: end {end_ts} is before start {start_ts}")
    client = client or make_client()
    backoff = backoff or Backoff()
    report = CoinMetricsFetch(asset)

    def call(fn, what: str):
        try:
            return backoff.call(fn, f"coinmetrics {what}", RETRYABLE, describe=_scrub)
        except _Unauthorized as exc:
            raise FetchError(
                f"Coin Metrics rejected the API key from ${API_KEY_ENV}: {_first_line(_scrub(exc.error))}"
                if os.environ.get(API_KEY_ENV)
                else f"Coin Metrics refused a request without a key: {_first_line(_scrub(exc.error))}"
            ) from None

    def no_retry_on_refusal(fn):  # refusals are answers, not failures: retrying cannot change them
        def run():
            try:
                return fn()
            except CoinMetricsClientUnauthorizedError as exc:
                raise _Unauthorized(exc) from None
            except CoinMetricsClientForbiddenError as exc:
                raise _Refused(exc) from None

        return run

    def probe():  # a catalog request that cannot connect means offline, not a blip worth retrying
        try:
            return available_metrics(client, asset)
        except Unreachable as exc:
            raise _Offline(exc.error) from None

    try:
        report.available = call(no_retry_on_refusal(probe), f"catalog of {asset}")
    except _Offline as exc:
        raise FetchError(
            f"cannot reach the Coin Metrics API ({_reason(exc.error)}): check the network "
            "connection, or import exported files with csv:PATH"
        ) from None
    except _Refused as exc:
        raise FetchError(f"Coin Metrics refused its catalog for {asset}: {_first_line(_scrub(exc.error))}") from None
    if not report.available:
        raise FetchError(f"Coin Metrics serves no daily metrics for {asset!r} (is it a Coin Metrics asset id?)")
    wanted = list(metrics) if metrics is not None else report.available
    for name in wanted:
        if name not in report.available:
            report.refused[name] = "not in the catalog for this asset at 1d"
            store.record_refused(asset, interval, normalise(name), report.refused[name], SOURCE)
    todo = [m for m in wanted if m in report.available]
    if not todo:
        return report
    series = f"{asset.lower()}:{','.join(sorted(todo))}"
    done = store.covered_until("metrics", asset, interval, SOURCE, series, start_ts)
    since = start_ts if done is None else max(start_ts, (done + DAY).floor("D"))
    report.resumed_from = since if done is not None else None
    chunks = list(_chunks(since, end_ts, chunk_days))
    for lo, hi in tqdm(chunks, desc=f"{asset} coinmetrics", unit="chunk", disable=not progress, leave=False):

        def get(a=lo, b=hi):
            return list(
                client.get_asset_metrics(
                    assets=asset.lower(),
                    metrics=todo,
                    frequency=FREQUENCY,
                    start_time=a.strftime("%Y-%m-%d"),
                    end_time=b.strftime("%Y-%m-%d"),
                    page_size=page_size,
                    paging_from="start",
                    format="json",
                )
            )

        try:
            rows = call(no_retry_on_refusal(get), f"{asset} {lo:%Y-%m-%d}..{hi:%Y-%m-%d}")
        except _Refused as exc:
            reason = f"refused: {_first_line(_scrub(exc.error))}"
            for name in todo:
                report.refused[name] = reason
                store.record_refused(asset, interval, normalise(name), reason, SOURCE)
            log.warning("[%s] coinmetrics %s", asset, reason)
            break
        report.chunks += 1
        if rows:
            frame = _frame(rows, todo)
            for m in todo:
                report.fetched[normalise(m)] = report.fetched.get(normalise(m), 0) + int(
                    frame[normalise(m)].notna().sum()
                )
            report.written += store.upsert_metrics(
                asset,
                interval,
                frame,
                SOURCE,
                covered=(series, since, hi),
                replace=replace,
                labels={normalise(m): m for m in todo},
            )
        else:
            store.record_coverage("metrics", asset, interval, SOURCE, series, since, hi)
    report.retries = backoff.used
    return report


class _Refused(Exception):
    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


class _Unauthorized(_Refused):
    pass


class _Offline(_Refused):
    pass


__all__ = [
    "API_KEY_ENV",
    "SOURCE",
    "TIMEOUT",
    "Unreachable",
    "CoinMetricsFetch",
    "available_metrics",
    "fetch_metrics",
    "make_client",
]
