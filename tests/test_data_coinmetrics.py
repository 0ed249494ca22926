"""Coin Metrics source over recorded HTTP replies (the API's JSON: catalog-v2, timeseries pages with
``next_page_token``, a 429 with ``x-ratelimit-reset``). Only the socket boundary is faked."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest
import requests

from cryptorl.data.coinmetrics import fetch_metrics, make_client
from cryptorl.data.retry import Backoff, FetchError
from cryptorl.data.store import DataStore
from tests._data_fakes import install, json_response

METRICS = ["AdrActCnt", "TxCnt"]
DAYS = pd.date_range("2021-01-01", "2021-03-31", freq="D", tz="UTC")


def _value(metric: str, day: pd.Timestamp) -> str:
    base = 900_000 if metric == "AdrActCnt" else 250_000
    return f"{base + (day.dayofyear * 37) % 1000 + 0.5:.1f}"


class FakeCoinMetrics:
    """community-api.coinmetrics.io/v4 for one asset: catalog and paged daily time series."""

    def __init__(self, fail_after: int | None = None, rate_limit_first: bool = True):
        self.requests: list[str] = []
        self.timeseries = 0
        self.fail_after = fail_after
        self.rate_limit_first = rate_limit_first

    def __call__(self, request):
        url = urlparse(request.url)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.requests.append(url.path)
        assert url.hostname == "community-api.coinmetrics.io" and "api_key" not in q
        if url.path == "/v4/catalog-v2/asset-metrics":
            assert q["assets"] == "btc"
            metrics = [
                {
                    "metric": m,
                    "frequencies": [
                        {
                            "frequency": "1d",
                            "min_time": "2009-01-09T00:00:00.000000000Z",
                            "max_time": "2024-12-31T00:00:00.000000000Z",
                            "community": True,
                        }
                    ],
                }
                for m in METRICS
            ] + [{"metric": "ReferenceRate", "frequencies": [{"frequency": "1s"}]}]
            return json_response(request, 200, {"data": [{"asset": "btc", "metrics": metrics}]})
        assert url.path == "/v4/timeseries/asset-metrics", url.path
        self.timeseries += 1
        if self.rate_limit_first and self.timeseries == 1:
            resp = json_response(
                request, 429, {"error": {"type": "too_many_requests", "message": "Requests rate limit exceeded."}}
            )
            resp.headers["x-ratelimit-reset"] = "0"
            return resp
        if self.fail_after is not None and self.timeseries > self.fail_after:
            return json_response(request, 503, {"error": {"type": "unavailable", "message": "Service unavailable."}})
        assert q["frequency"] == "1d" and q["metrics"] == ",".join(METRICS)
        lo, hi = pd.Timestamp(q["start_time"], tz="UTC"), pd.Timestamp(q["end_time"], tz="UTC")
        days = [d for d in DAYS if lo <= d <= hi]
        size, offset = int(q["page_size"]), int(q.get("next_page_token", 0))
        page = days[offset : offset + size]
        rows = [
            {
                "asset": "btc",
                "time": d.strftime("%Y-%m-%dT%H:%M:%S.000000000Z"),
                **{m: _value(m, d) for m in METRICS if not (m == "TxCnt" and d.day == 15)},
            }
            for d in page
        ]
        body = {"data": rows}
        if offset + size < len(days):
            body["next_page_token"] = str(offset + size)
            body["next_page_url"] = request.url + f"&next_page_token={offset + size}"
        return json_response(request, 200, body)


def _fetch(store, fake, monkeypatch, **kw):
    install(monkeypatch, fake)
    monkeypatch.delenv("COINMETRICS_API_KEY", raising=False)
    return fetch_metrics(
        store,
        "BTC",
        "2021-01-01",
        "2021-03-31",
        client=make_client(),
        chunk_days=30,
        page_size=7,
        backoff=Backoff(retries=1, sleep=lambda s: None),
        progress=False,
        **kw,
    )


def test_download_pages_through_a_rate_limit_into_the_store(store, monkeypatch):
    fake = FakeCoinMetrics()
    rep = _fetch(store, fake, monkeypatch)
    assert rep.available == METRICS and rep.refused == {} and rep.chunks == 3  # 90 days in 30-day chunks
    m = store.metrics("BTC", "1d")
    assert list(m.columns) == ["adr_act_cnt", "tx_cnt"] and len(m) == len(DAYS)
    assert store.metric_labels("BTC") == {"adr_act_cnt": "AdrActCnt", "tx_cnt": "TxCnt"}
    assert m.index[0] == DAYS[0] and m.index[-1] == DAYS[-1]
    assert m.loc["2021-02-01", "adr_act_cnt"] == float(_value("AdrActCnt", pd.Timestamp("2021-02-01")))
    assert m["tx_cnt"].isna().sum() == 3  # a metric absent from a row stays missing, not zero
    assert fake.timeseries == 3 * 5 + 1  # pages of 7 days: 5 per 30-day chunk, plus the 429
    # a second run asks only the catalog: everything is covered
    again = FakeCoinMetrics(rate_limit_first=False)
    rep2 = _fetch(store, again, monkeypatch)
    assert again.timeseries == 0 and rep2.written == 0


def test_interrupted_download_resumes_to_the_same_store(tmp_path, monkeypatch):
    whole = DataStore(tmp_path / "whole")
    _fetch(whole, FakeCoinMetrics(), monkeypatch)
    cut = DataStore(tmp_path / "cut")
    with pytest.raises(FetchError, match="gave up"):
        _fetch(cut, FakeCoinMetrics(fail_after=6), monkeypatch)
    partial = cut.metrics("BTC", "1d")
    assert 0 < len(partial) < len(DAYS)
    rest = FakeCoinMetrics(rate_limit_first=False)
    rep = _fetch(cut, rest, monkeypatch)
    assert rep.resumed_from is not None and rep.resumed_from > DAYS[0]
    pd.testing.assert_frame_equal(cut.metrics("BTC", "1d"), whole.metrics("BTC", "1d"))
    whole.close()
    cut.close()


def test_api_key_from_the_environment_selects_the_pro_endpoint(monkeypatch):
    monkeypatch.setenv("COINMETRICS_API_KEY", "test-key-not-real")
    assert make_client()._api_base_url == "https://api.coinmetrics.io/v4"
    monkeypatch.delenv("COINMETRICS_API_KEY")
    assert make_client()._api_base_url == "https://community-api.coinmetrics.io/v4"


def test_a_rejected_key_stops_the_run_and_is_never_shown(store, monkeypatch):
    def handler(request):
        assert urlparse(request.url).hostname == "api.coinmetrics.io"
        return json_response(
            request, 401, {"error": {"type": "unauthorized", "message": "Requested resource requires authorization."}}
        )

    install(monkeypatch, handler)
    monkeypatch.setenv("COINMETRICS_API_KEY", "test-key-not-real")
    with pytest.raises(FetchError) as exc:
        fetch_metrics(
            store, "BTC", "2021-01-01", "2021-01-31", backoff=Backoff(retries=1, sleep=lambda s: None), progress=False
        )
    assert "COINMETRICS_API_KEY" in str(exc.value) and "test-key-not-real" not in str(exc.value)
    assert store.metrics("BTC", "1d").empty


def test_coinmetrics_is_a_metrics_source_not_a_price_source():
    from cryptorl.data import load_data

    with pytest.raises(ValueError, match="--metrics coinmetrics"):
        load_data("BTC", "6h", source="coinmetrics")


def _offline(calls: list):
    """The transport of a machine without network: every connection fails as urllib3 reports it."""
    from urllib3.connection import HTTPSConnection
    from urllib3.exceptions import MaxRetryError, NameResolutionError

    def send(request):
        calls.append(request.url)
        conn = HTTPSConnection("community-api.coinmetrics.io")
        reason = NameResolutionError(
            "community-api.coinmetrics.io", conn, OSError("Temporary failure in name resolution")
        )
        raise requests.exceptions.ConnectionError(MaxRetryError(None, request.url, reason), request=request)

    return send


def test_offline_stops_at_the_catalog_within_seconds_with_one_line(store, monkeypatch):
    import time

    calls: list[str] = []
    install(monkeypatch, _offline(calls))
    monkeypatch.setenv("COINMETRICS_API_KEY", "secret-key-123")
    began = time.monotonic()
    with pytest.raises(FetchError) as err:
        fetch_metrics(store, "BTC", "2021-01-01", "2021-03-31", client=make_client(), progress=False)
    assert time.monotonic() - began < 5
    message = str(err.value)
    assert message.startswith("cannot reach the Coin Metrics API (Failed to resolve 'community-api.coinmetrics.io'")
    assert "\n" not in message and "secret-key-123" not in message and "object at 0x" not in message
    assert len(calls) == 1 and "/catalog-v2/" in calls[0]  # one probe, no retries
    assert store.metrics("BTC", "1d").empty


def test_connection_lost_after_the_catalog_is_retried_with_backoff(store, monkeypatch):
    fake = FakeCoinMetrics(rate_limit_first=False)
    lost = {"n": 0}

    def flaky(request):
        if "/timeseries/" in request.url and lost["n"] < 2:
            lost["n"] += 1
            return _offline([])(request)
        return fake(request)

    install(monkeypatch, flaky)
    monkeypatch.delenv("COINMETRICS_API_KEY", raising=False)
    waits: list[float] = []
    rep = fetch_metrics(
        store,
        "BTC",
        "2021-01-01",
        "2021-03-31",
        client=make_client(),
        chunk_days=90,
        page_size=100,
        backoff=Backoff(retries=3, sleep=waits.append),
        progress=False,
    )
    assert rep.retries == 2 and waits == [1.0, 2.0] and len(store.metrics("BTC", "1d")) == len(DAYS)
