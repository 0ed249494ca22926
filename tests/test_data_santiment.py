"""Santiment metrics through sanpy: only the HTTP replies are faked, in Santiment's GraphQL JSON shape."""

from __future__ import annotations

import logging

import _data_fakes as fakes
import numpy as np
import pandas as pd
import pytest
import san

from cryptorl.data.demo import demo_metrics
from cryptorl.data.retry import Backoff, FetchError
from cryptorl.data.santiment import fetch_metrics, slug_for

KEY = "sk-test-0123456789abcdef"
START, END = "2020-10-01", "2021-01-31"  # 123 days


@pytest.fixture(scope="module")
def pool():
    return demo_metrics("BTC", "1d", START, END)


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("SANPY_APIKEY", KEY)
    monkeypatch.setattr(san.ApiConfig, "api_key", None)


def serve(monkeypatch, pool, names, **kw) -> fakes.FakeSantiment:
    fake = fakes.FakeSantiment({("bitcoin", m): pool[m] for m in names}, **kw)
    fakes.install(monkeypatch, fake)
    return fake


def test_discovers_fetches_and_records_the_refused_metric(monkeypatch, store, pool, caplog):
    names = list(pool.columns[:4])
    holes = pool.copy()
    holes.iloc[10:20, 1] = np.nan  # Santiment sends null for days without a value
    fake = fakes.FakeSantiment(
        {("bitcoin", m): holes[m] for m in names}, restricted={"mvrv_usd"}, faults={2: "429", 3: "network", 6: "503"}
    )
    fakes.install(monkeypatch, fake)
    sleeps: list[float] = []
    with caplog.at_level(logging.DEBUG):
        rep = fetch_metrics(
            store, "BTC", "1d", START, END, max_points=50, backoff=Backoff(sleep=sleeps.append), progress=False
        )
    assert rep.slug == "bitcoin" and set(rep.available) == {*names, "mvrv_usd"}
    assert sorted(rep.fetched) == sorted(names) and list(rep.refused) == ["mvrv_usd"]
    assert rep.refused["mvrv_usd"].startswith("refused by the plan: The metric mvrv_usd is not accessible")
    refused = store.refused()
    assert refused[["asset", "interval", "metric", "source"]].values.tolist() == [
        ["BTC", "1d", "mvrv_usd", "santiment"]
    ]
    assert "SANAPI FREE subscription" in refused.reason.iloc[0]
    got = store.metrics("BTC", "1d")
    pd.testing.assert_frame_equal(got, holes[sorted(names)].dropna(how="all"), check_freq=False)
    # 123 days in chunks of 50 -> 3 requests per metric, contiguous and not overlapping
    calls = [c for c in fake.metric_calls if c["metric"] == names[0]]
    assert sorted({c["from"] for c in calls}) == [
        pd.Timestamp(t, tz="UTC") for t in ("2020-10-01", "2020-11-20", "2021-01-09")
    ]
    assert sorted({c["to"] for c in calls}) == [
        pd.Timestamp(t, tz="UTC") for t in ("2020-11-19 23:59:59", "2021-01-08 23:59:59", "2021-01-31 23:59:59")
    ]
    assert {c["interval"] for c in fake.metric_calls} == {"1d"} and {c["slug"] for c in fake.metric_calls} == {
        "bitcoin"
    }
    assert sleeps == [3.0, 2.0, 1.0]  # Santiment's "Try again in 3 seconds", then backoff
    # the key went only into the Authorization header, never into a log line or the store
    assert {h.get("authorization") for h in fake.headers} == {f"Apikey {KEY}"}
    assert KEY not in caplog.text and san.ApiConfig.api_key is None
    for path in store.root.iterdir():
        assert KEY.encode() not in path.read_bytes()


def test_resume_fetches_only_what_is_missing(monkeypatch, store, pool):
    names = list(pool.columns[:3])
    fake = serve(monkeypatch, pool, names)
    fetch_metrics(store, "BTC", "1d", START, "2020-12-31", max_points=40, progress=False)
    n = len(fake.metric_calls)
    rep = fetch_metrics(store, "BTC", "1d", START, END, max_points=40, progress=False)
    new = fake.metric_calls[n:]
    assert len(new) == 3 and {c["from"] for c in new} == {pd.Timestamp("2021-01-01", tz="UTC")}
    assert all(v == 31 for v in rep.fetched.values())
    pd.testing.assert_frame_equal(store.metrics("BTC", "1d"), pool[sorted(names)], check_freq=False)


def test_a_later_success_clears_the_refusal_and_unknown_names_are_recorded(monkeypatch, store, pool):
    names = list(pool.columns[:2])
    serve(monkeypatch, pool, names, restricted={names[1]})
    fetch_metrics(store, "BTC", "1d", START, END, progress=False)
    assert store.refused().metric.tolist() == [names[1]]
    serve(monkeypatch, pool, names)  # plan upgraded
    rep = fetch_metrics(store, "BTC", "1d", START, END, metrics=[names[1], "no_such_metric"], progress=False)
    assert list(rep.fetched) == [names[1]]
    assert store.refused().values[:, [2, 3]].tolist() == [["no_such_metric", "not offered for slug bitcoin"]]


def test_rejected_key_stops_the_run_without_showing_the_key(monkeypatch, store):
    def reject(request):
        return fakes.json_response(request, 401, {"errors": {"details": f"Apikey '{KEY}' is not valid"}})

    fakes.install(monkeypatch, reject)
    with pytest.raises(FetchError, match=r"rejected the API key from \$SANPY_APIKEY") as err:
        fetch_metrics(store, "BTC", "1d", START, END, progress=False)
    assert KEY not in str(err.value) and "is not valid" in str(err.value)


def test_unknown_slug_and_ticker(monkeypatch, store, pool):
    serve(monkeypatch, pool, list(pool.columns[:1]))
    with pytest.raises(FetchError, match="no metrics for slug 'bitcoin-sv'.*not found"):
        fetch_metrics(store, "BSV", "1d", START, END, slugs={"BSV": "bitcoin-sv"}, progress=False)
    with pytest.raises(ValueError, match="no Santiment slug known for 'ZZZ'"):
        slug_for("ZZZ")
    assert slug_for("link") == "chainlink" and slug_for("XRP", {"xrp": "ripple"}) == "ripple"
