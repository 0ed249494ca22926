"""ccxt OHLCV download: ccxt's real Binance class, only its HTTP replies faked (Binance's wire format)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import _data_fakes as fakes
import ccxt
import numpy as np
import pandas as pd
import pytest

from cryptorl.data import DataStore
from cryptorl.data.demo import demo_market
from cryptorl.data.exchange import check_timeframe, fetch_market, make_exchange
from cryptorl.data.retry import Backoff, FetchError

ROOT = Path(__file__).resolve().parents[1]
DAY_MS = 86_400_000
LATER = int(pd.Timestamp("2025-01-01", tz="UTC").value // 10**6)  # a "now" long after the test ranges


def ms(t) -> int:
    return int(pd.Timestamp(t, tz="UTC").value // 10**6)


@pytest.fixture(scope="module")
def daily():
    return demo_market("BTC", "1d", "2021-01-01", "2021-06-30")  # 181 bars


def serve(monkeypatch, klines, faults=None) -> fakes.FakeBinance:
    fake = fakes.FakeBinance(klines, faults)
    fakes.install(monkeypatch, fake)
    return fake


def assert_same_bars(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert got.index.equals(want.index)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12, atol=1e-8)  # 8 decimals on the wire


def test_paginates_retries_and_stores_every_bar_once(monkeypatch, store, daily):
    faults = {2: "429", 3: "network", 5: "503", 6: "-1001"}
    fake = serve(monkeypatch, {("BTCUSDT", "1d"): fakes.klines_from_market(daily, DAY_MS)}, faults)
    sleeps: list[float] = []
    rep = fetch_market(
        store,
        "BTC",
        "1d",
        "2021-01-01",
        "2021-06-30",
        limit=50,
        backoff=Backoff(sleep=sleeps.append),
        now=lambda: LATER,
        progress=False,
    )
    got = store.market("BTC", "1d")
    assert_same_bars(got, daily)  # no gap, no duplicate, same values
    assert rep.bars == rep.written == 181 and rep.pages == 4 and rep.gaps == []
    # page 2 failed twice (429, then a dropped connection), page 3 twice (HTML 503, Binance -1001)
    assert rep.retries == 4 and sleeps == [1.0, 2.0, 1.0, 2.0]
    starts = [int(c["startTime"]) for c in fake.klines_calls]
    assert starts == [ms("2021-01-01")] + [ms("2021-02-20")] * 3 + [ms("2021-04-11")] * 3 + [ms("2021-05-31")]
    assert {c["limit"] for c in fake.klines_calls} == {"50"} and {c["symbol"] for c in fake.klines_calls} == {"BTCUSDT"}
    # the same range again: served from the fetch log, nothing asked, nothing changed
    rep2 = fetch_market(store, "BTC", "1d", "2021-01-01", "2021-06-30", limit=50, now=lambda: LATER, progress=False)
    assert rep2.pages == 0 and rep2.written == 0 and len(fake.klines_calls) == 8


def test_respects_the_rate_limit(monkeypatch, store, daily):
    fake = serve(monkeypatch, {("BTCUSDT", "1d"): fakes.klines_from_market(daily, DAY_MS)})
    stamps: list[float] = []
    inner = fake.__call__

    def timed(request):
        if "/klines" in request.url:
            stamps.append(time.monotonic())
        return inner(request)

    fakes.install(monkeypatch, timed)
    ex = make_exchange("binance", rateLimit=150)  # ms per unit of request weight
    assert ex.enableRateLimit
    fetch_market(
        store, "BTC", "1d", "2021-01-01", "2021-06-30", exchange=ex, limit=40, now=lambda: LATER, progress=False
    )
    spacing = np.diff(stamps)
    cost = ex.api["public"]["get"]["klines"]["cost"]  # ccxt's weight for Binance spot klines (0.4)
    assert len(stamps) == 5 and spacing.min() >= 0.9 * ex.rateLimit * cost / 1000


def test_hourly_pages_and_the_open_candle_is_dropped(monkeypatch, store):
    hourly = demo_market("ETH", "1h", "2017-03-01", "2017-03-05 23:00")  # 120 bars
    fake = serve(monkeypatch, {("ETHUSDT", "1h"): fakes.klines_from_market(hourly, 3_600_000)})
    now = ms("2017-03-05 23:30")  # the 23:00 bar is still open
    rep = fetch_market(store, "ETH", "1h", "2017-03-01", None, limit=50, now=lambda: now, progress=False)
    assert rep.bars == 119 and store.last_time("ETH", "1h") == pd.Timestamp("2017-03-05 22:00", tz="UTC")
    assert_same_bars(store.market("ETH", "1h"), hourly.iloc[:-1])
    # an hour later the bar has closed: the next run asks only for it
    rep = fetch_market(store, "ETH", "1h", "2017-03-01", None, limit=50, now=lambda: now + 3_600_000, progress=False)
    assert rep.bars == 1 and int(fake.klines_calls[-1]["startTime"]) == ms("2017-03-05 23:00")
    assert_same_bars(store.market("ETH", "1h"), hourly)


def test_exchange_outage_and_late_listing_are_kept_as_they_are(monkeypatch, store, daily):
    listed = daily.iloc[20:]  # the market opened on 2021-01-21, after the asked start
    outage = listed.drop(listed.index[60:65])  # and the exchange has no bars for five days
    fake = serve(monkeypatch, {("BTCUSDT", "1d"): fakes.klines_from_market(outage, DAY_MS)})
    rep = fetch_market(store, "BTC", "1d", "2021-01-01", "2021-06-30", limit=50, now=lambda: LATER, progress=False)
    assert rep.bars == len(outage) and [(g.after, g.missing) for g in rep.gaps] == [(listed.index[59], 5)]
    assert store.time_range("BTC", "1d") == (listed.index[0], listed.index[-1])
    n = len(fake.klines_calls)
    fetch_market(store, "BTC", "1d", "2021-01-01", "2021-06-30", limit=50, now=lambda: LATER, progress=False)
    assert len(fake.klines_calls) == n  # what the exchange does not have is not asked for again


def test_gives_up_after_the_retries_and_keeps_what_it_stored(monkeypatch, store, daily):
    serve(
        monkeypatch, {("BTCUSDT", "1d"): fakes.klines_from_market(daily, DAY_MS)}, {n: "network" for n in range(2, 10)}
    )
    with pytest.raises(FetchError, match=r"gave up after 3 retries \(NetworkError"):
        fetch_market(
            store,
            "BTC",
            "1d",
            "2021-01-01",
            "2021-06-30",
            limit=50,
            backoff=Backoff(retries=3, sleep=lambda s: None),
            now=lambda: LATER,
            progress=False,
        )
    assert store.count("BTC", "1d") == 50  # the first page, committed


def test_unknown_market_timeframe_and_exchange_are_clear_errors(monkeypatch, store, daily):
    serve(monkeypatch, {("BTCUSDT", "1d"): fakes.klines_from_market(daily, DAY_MS)})
    with pytest.raises(ValueError, match="binance has no market 'DOGE/USDT'"):
        fetch_market(store, "DOGE", "1d", "2021-01-01", "2021-01-05", now=lambda: LATER, progress=False)
    with pytest.raises(ValueError, match="does not offer timeframe '2d'; it offers 1s, 1m"):
        check_timeframe(ccxt.binance(), "2d")
    with pytest.raises(ValueError, match="unknown interval '1M'"):
        check_timeframe(ccxt.binance(), "1M")  # calendar months have no fixed length
    with pytest.raises(ValueError, match="unknown exchange id 'binanse'"):
        make_exchange("binanse")


@pytest.mark.realdata
def test_real_binance_klines_round_trip(monkeypatch, store, shared_data):
    csv = shared_data / "prices" / "binance" / "BTCUSDT_1d.csv"
    serve(monkeypatch, {("BTCUSDT", "1d"): fakes.klines_from_binance_csv(csv)}, {3: "429"})
    rep = fetch_market(
        store,
        "BTC",
        "1d",
        "2020-10-01",
        "2022-09-30",
        backoff=Backoff(sleep=lambda s: None),
        now=lambda: LATER,
        progress=False,
    )
    assert rep.pages == 1 and rep.bars == 730 and rep.gaps == []  # Binance's 1000-bar page
    want = pd.read_csv(csv, index_col="datetime", parse_dates=True).loc[
        "2020-10-01":"2022-09-30", ["open", "high", "low", "close", "volume"]
    ]
    got = store.market("BTC", "1d")
    assert (got.index.tz_localize(None) == want.index).all()
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())  # same decimals, parsed by ccxt


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path[:0] = [{tests!r}, {root!r}]
    import _data_fakes as fakes
    from requests.adapters import HTTPAdapter
    from cryptorl.data import DataStore
    from cryptorl.data.demo import demo_market
    from cryptorl.data.exchange import fetch_market

    market = demo_market("BTC", "1d", "2021-01-01", "2021-06-30")
    fake = fakes.FakeBinance({{("BTCUSDT", "1d"): fakes.klines_from_market(market, 86_400_000)}})
    HTTPAdapter.send = lambda self, request, **kw: fake(request)
    store = DataStore({store!r})
    # die in the middle of writing page 3 (its transaction open, some of its rows inserted)
    store._prices.create_function("die", 0, lambda: os.kill(os.getpid(), signal.SIGKILL))
    store._prices.execute("CREATE TRIGGER die BEFORE INSERT ON prices WHEN NEW.time = {kill_at} BEGIN SELECT die(); END")
    fetch_market(store, "BTC", "1d", "2021-01-01", "2021-06-30", limit=40, now=lambda: {later}, progress=False)
    print("not killed")
""")


def test_kill_and_resume_gives_the_same_store(monkeypatch, tmp_path, daily):
    killed = tmp_path / "killed"
    kill_at = int(daily.index[95].value // 10**9)  # row 16 of page 3 (bars 80..119)
    script = KILL_SCRIPT.format(
        tests=str(ROOT / "tests"), root=str(ROOT), store=str(killed), kill_at=kill_at, later=LATER
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert proc.returncode == -9, proc.stdout + proc.stderr  # SIGKILL: no cleanup ran
    with sqlite3.connect(killed / "prices.sqlite") as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c.execute("SELECT count(*) FROM prices").fetchone()[0] == 80  # pages 1-2; page 3 rolled back
        c.execute("DROP TRIGGER die")

    fake = serve(monkeypatch, {("BTCUSDT", "1d"): fakes.klines_from_market(daily, DAY_MS)})
    with DataStore(killed) as resumed:
        rep = fetch_market(
            resumed, "BTC", "1d", "2021-01-01", "2021-06-30", limit=40, now=lambda: LATER, progress=False
        )
        assert rep.resumed_from == daily.index[80]
        assert int(fake.klines_calls[0]["startTime"]) == ms("2021-03-22")  # asks only for what is missing
        with DataStore(tmp_path / "whole") as whole:
            fetch_market(whole, "BTC", "1d", "2021-01-01", "2021-06-30", limit=40, now=lambda: LATER, progress=False)
            pd.testing.assert_frame_equal(resumed.market("BTC", "1d"), whole.market("BTC", "1d"))
            assert resumed.gaps("BTC", "1d") == [] and resumed.count("BTC", "1d") == 181
            cols = ["asset", "interval", "source", "series", "covered_to"]
            assert resumed.fetch_log()[cols].covered_to.max() == whole.fetch_log()[cols].covered_to.max()
