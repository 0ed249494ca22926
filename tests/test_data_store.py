"""DataStore: idempotent, transactional upserts; validation before any write; queries; fetch log."""

from __future__ import annotations

import itertools
import sqlite3
import tempfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptorl.data import DataError, DataStore, load_data
from cryptorl.data.demo import demo_data, demo_market
from cryptorl.data.frames import when

START, END = "2021-01-01", "2021-02-19"  # 50 daily bars


@pytest.fixture(scope="module")
def frames():
    return demo_data("BTC", "1d", START, END)


def snapshot(root) -> tuple[list, list]:
    """Every row of both stores, read with plain sqlite3 (not through the class under test)."""
    with sqlite3.connect(root / "prices.sqlite") as p, sqlite3.connect(root / "metrics.sqlite") as m:
        return (
            p.execute("SELECT * FROM prices ORDER BY 1, 2, 3").fetchall(),
            m.execute("SELECT * FROM metrics ORDER BY 1, 2, 3, 4").fetchall(),
        )


# ------------------------------------------------------------------ round trip, idempotence
def test_round_trip_and_idempotent_upsert(store, frames):
    market, metrics = frames
    assert store.upsert_market("btc", "1d", market, "demo") == len(market)
    n_values = int(metrics.notna().sum().sum())
    assert store.upsert_metrics("BTC", "1d", metrics, "demo") == n_values
    before = snapshot(store.root)
    # the same range again: nothing changes, and the calls say so
    assert store.upsert_market("BTC", "1d", market, "demo") == 0
    assert store.upsert_metrics("BTC", "1d", metrics, "demo") == 0
    assert snapshot(store.root) == before

    got = store.market("BTC", "1d")
    pd.testing.assert_frame_equal(got, market)
    assert got.index.tz is not None and str(got.index.tz) == "UTC" and got.index.name == "time"
    assert list(got.dtypes.astype(str)) == ["float64"] * 5
    pd.testing.assert_frame_equal(store.metrics("BTC", "1d"), metrics[sorted(metrics.columns)], check_freq=False)
    assert store.last_time("BTC", "1d") == market.index[-1]
    assert store.assets() == ["BTC"] and store.intervals("BTC") == ["1d"]


def test_changed_values_are_updated_and_counted(store, frames):
    market, _ = frames
    store.upsert_market("BTC", "1d", market, "demo")
    revised = market.copy()
    revised.iloc[10:13, 4] *= 2.0  # three volumes revised by the source
    assert store.upsert_market("BTC", "1d", revised, "demo") == 3
    pd.testing.assert_frame_equal(store.market("BTC", "1d"), revised)


def test_query_by_range_and_names(store, frames):
    market, metrics = frames
    store.upsert_market("BTC", "1d", market, "demo")
    store.upsert_metrics("BTC", "1d", metrics, "demo")
    got = store.market("BTC", "1d", "2021-01-10", "2021-01-19")
    assert len(got) == 10 and got.index[0] == pd.Timestamp("2021-01-10", tz="UTC")
    assert got.index[-1] == pd.Timestamp("2021-01-19", tz="UTC")  # both ends included
    names = [metrics.columns[2], metrics.columns[0]]
    m = store.metrics("BTC", "1d", "2021-01-10", "2021-01-19", names=names)
    assert list(m.columns) == names and len(m) == 10
    pd.testing.assert_frame_equal(m, metrics.loc["2021-01-10":"2021-01-19", names], check_freq=False)
    with pytest.raises(DataError, match=r"\[BTC\].*not stored"):
        store.metrics("BTC", "1d", names=["no_such_metric"])
    empty = store.metrics("ETH", "1d")
    assert empty.shape == (0, 0) and isinstance(empty.index, pd.DatetimeIndex)


def test_nan_metric_values_are_not_observations(store, frames):
    _, metrics = frames
    m = metrics.iloc[:, :2].copy()
    store.upsert_metrics("BTC", "1d", m, "demo")
    holes = m.copy()
    holes.iloc[5:8, 0] = np.nan
    assert store.upsert_metrics("BTC", "1d", holes, "demo") == 0  # NaN never erases a stored value
    pd.testing.assert_frame_equal(store.metrics("BTC", "1d"), m[sorted(m.columns)], check_freq=False)
    fresh = DataStore(store.root / "other")
    fresh.upsert_metrics("BTC", "1d", holes, "demo")
    back = fresh.metrics("BTC", "1d")[holes.columns]
    assert back.iloc[5:8, 0].isna().all() and back.iloc[:5, 0].notna().all()
    fresh.close()


# ------------------------------------------------------------------ transactions
def test_failure_mid_batch_leaves_store_as_before(store, frames):
    market, _ = frames
    store.upsert_market("BTC", "1d", market.iloc[:30], "demo")
    before = snapshot(store.root)
    # a real database failure in the middle of the next batch (a trigger aborts one insert)
    boom = int(market.index[40].value // 10**9)
    with sqlite3.connect(store.prices_path) as c:
        c.execute(
            f"CREATE TRIGGER boom BEFORE INSERT ON prices WHEN NEW.time = {boom} "
            "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )
    batch = market.iloc[20:].copy()
    batch.iloc[:10, 3] *= 1.01  # rows 20..29 would be updated, 30..39 inserted before the failure
    batch.iloc[:10, 1] = batch.iloc[:10, [0, 1, 3]].max(axis=1)
    with pytest.raises(sqlite3.DatabaseError, match="disk on fire"):
        store.upsert_market("BTC", "1d", batch, "demo")
    assert snapshot(store.root) == before
    with sqlite3.connect(store.prices_path) as c:
        c.execute("DROP TRIGGER boom")
    assert store.upsert_market("BTC", "1d", batch, "demo") == len(batch)  # the store still works


# ------------------------------------------------------------------ bad input: one clear error, nothing written
def _bad_frames(market: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, str, str | None]]:
    m = market.iloc[:10].copy()
    t3 = m.index[3]
    unsorted = m.iloc[[0, 1, 3, 2, 4, 5, 6, 7, 8, 9]]
    dup = pd.concat([m, m.iloc[[3]].assign(close=m.close.iloc[3] * 1.01)]).sort_index(kind="stable")
    nan = m.copy()
    nan.iloc[3, 3] = np.nan
    nonpos = m.copy()
    nonpos.iloc[3, 2] = 0.0
    hl = m.copy()
    hl.iloc[3, 1] = hl.iloc[3, 2] * 0.5
    cols = m.rename(columns={"volume": "vol"})
    mixed = m.copy()
    mixed.index = pd.Index(
        [t.tz_localize(None) if i == 0 else t.tz_convert("Asia/Tokyo") for i, t in enumerate(m.index)], dtype=object
    )
    offgrid = m.copy()
    offgrid.index = offgrid.index.insert(5, offgrid.index[4] + pd.Timedelta(hours=6))[:10]
    text = m.copy().astype(object)
    text.iloc[3, 0] = "n/a"
    return {
        "unsorted": (unsorted, "not sorted", when(m.index[2])),
        "conflicting duplicate": (dup, "conflicting rows", when(t3)),
        "NaN": (nan, "NaN in \\['close'\\]", when(t3)),
        "non-positive price": (nonpos, "non-positive price", when(t3)),
        "high < low": (hl, "inconsistent bar", when(t3)),
        "wrong columns": (cols, "lacks column", None),
        "mixed time zones": (mixed, "mixes time zones", "row 0"),
        "off grid": (offgrid, "not on the 1d grid", when(m.index[4])),
        "not a number": (text, "not a number", when(t3)),
        "empty": (m.iloc[:0], "empty", None),
    }


@pytest.mark.parametrize("case", list(_bad_frames(demo_market("BTC", "1d", START, END))))
def test_bad_market_input_gives_one_clear_error_and_writes_nothing(store, frames, case):
    market, _ = frames
    store.upsert_market("BTC", "1d", market.iloc[20:], "demo")
    before = snapshot(store.root)
    bad, problem, where = _bad_frames(market)[case]
    with pytest.raises(DataError, match=problem) as err:
        store.upsert_market("BTC", "1d", bad, "demo")
    assert err.value.asset == "BTC" and str(err.value).startswith("[BTC]")
    assert "\n" not in str(err.value)
    if where is not None:
        assert where in err.value.where
    assert snapshot(store.root) == before


def test_bad_metrics_input_writes_nothing(store, frames):
    _, metrics = frames
    store.upsert_metrics("BTC", "1d", metrics.iloc[:5], "demo")
    before = snapshot(store.root)
    bad = metrics.copy()
    bad.iloc[30, 4] = np.inf  # the last good rows would come first in any batch
    with pytest.raises(DataError, match="infinite") as err:
        store.upsert_metrics("BTC", "1d", bad, "demo")
    assert err.value.where == when(metrics.index[30]) == f"{metrics.index[30]:%Y-%m-%d}"
    unsorted = metrics.iloc[::-1]
    with pytest.raises(DataError, match="not sorted"):
        store.upsert_metrics("BTC", "1d", unsorted, "demo")
    assert snapshot(store.root) == before


def test_rows_off_the_stored_grid_are_refused(store, frames):
    market, _ = frames
    store.upsert_market("BTC", "1d", market.iloc[:10], "demo")
    shifted = market.iloc[20:21].copy()
    shifted.index = shifted.index + pd.Timedelta(hours=8)  # one bar: fine on its own, off the stored grid
    with pytest.raises(DataError, match="off the 1d grid") as err:
        store.upsert_market("BTC", "1d", shifted, "demo")
    assert "08:00" in err.value.where


def test_one_series_one_source(store, frames):
    market, metrics = frames
    store.upsert_market("BTC", "1d", market.iloc[:20], "demo")
    with pytest.raises(DataError, match=r"already holds 1d bars from \['demo'\]"):
        store.upsert_market("BTC", "1d", market.iloc[20:], "binance:BTC/USDT")
    assert store.count("BTC", "1d") == 20
    store.upsert_market("BTC", "1d", market.iloc[20:], "binance:BTC/USDT", replace=True)
    assert store.count("BTC", "1d") == 30  # the demo bars went, in the same transaction
    store.upsert_metrics("BTC", "1d", metrics.iloc[:, :2], "demo")
    with pytest.raises(DataError, match="already stored from"):
        store.upsert_metrics("BTC", "1d", metrics.iloc[:, 1:3], "santiment")
    store.upsert_metrics("BTC", "1d", metrics.iloc[:, 2:4], "santiment")  # new names: fine


# ------------------------------------------------------------------ gaps and empty ranges
def test_gaps_are_stored_reported_and_refused_on_query_unless_asked(store, frames):
    market, _ = frames
    holed = market.drop(market.index[[10, 11, 30]])
    store.upsert_market("BTC", "1d", holed, "demo")
    gaps = store.gaps("BTC", "1d")
    assert [(g.after, g.missing) for g in gaps] == [(market.index[9], 2), (market.index[29], 1)]
    with pytest.raises(DataError, match="gaps: 2 bar.*missing between 2021-01-10.*and 1 more"):
        store.market("BTC", "1d")
    assert len(store.market("BTC", "1d", "2021-01-13", "2021-01-30")) == 18  # a range without gaps is fine
    kept = store.market("BTC", "1d", gaps="keep")
    assert len(kept) == len(market) - 3
    filled = store.market("BTC", "1d", gaps="fill")
    assert filled.index.equals(market.index.rename("time")) or (filled.index == market.index).all()
    flat = filled.loc[market.index[10]]
    prev_close = market.close.iloc[9]
    assert flat.volume == 0 and flat.open == flat.high == flat.low == flat.close == prev_close
    assert store.summary("BTC", "1d")["gaps"] == gaps


def test_empty_ranges_are_clear_errors(store, frames):
    market, _ = frames
    store.upsert_market("BTC", "1d", market, "demo")
    with pytest.raises(DataError, match=r"\[BTC\] no 1d market data in 2023-01-01.*stored: 2021-01-01"):
        store.market("BTC", "1d", "2023-01-01", "2023-02-01")
    with pytest.raises(DataError, match=r"\[ETH\] no 1d market data.*nothing stored"):
        store.market("ETH", "1d")
    with pytest.raises(DataError, match="empty range: end .* before start"):
        store.market("BTC", "1d", "2021-02-01", "2021-01-01")
    with pytest.raises(ValueError, match="unknown interval"):
        store.market("BTC", "1 day")


# ------------------------------------------------------------------ refused metrics, fetch log
def test_refused_bookkeeping(store):
    store.record_refused("BTC", "1d", "mvrv_usd", "refused by the plan: upgrade", "santiment")
    store.record_refused("BTC", "1d", "mvrv_usd", "refused by the plan: upgrade to PRO", "santiment")
    store.record_refused("ETH", "1d", "nvt", "error: no data", "santiment")
    r = store.refused()
    assert list(r.columns) == ["asset", "interval", "metric", "reason", "source", "time"]
    assert r[["asset", "metric"]].values.tolist() == [["BTC", "mvrv_usd"], ["ETH", "nvt"]]
    assert r.reason.iloc[0].endswith("to PRO")
    store.clear_refused("BTC", "1d", "mvrv_usd")
    assert store.refused("BTC").empty and len(store.refused()) == 1


def test_covered_until_follows_adjacent_spans(store):
    day = pd.Timedelta(days=1)
    t0 = pd.Timestamp("2021-01-01", tz="UTC")

    def cov(a, b):
        return store.record_coverage("prices", "BTC", "1d", "x", "BTC/USDT", t0 + a * day, t0 + b * day)

    assert store.covered_until("prices", "BTC", "1d", "x", "BTC/USDT", t0) is None
    cov(0, 9)
    cov(10, 19)  # adjacent: the chain continues
    cov(25, 30)  # after a hole: not reached
    assert store.covered_until("prices", "BTC", "1d", "x", "BTC/USDT", t0) == t0 + 19 * day
    assert store.covered_until("prices", "BTC", "1d", "x", "BTC/USDT", t0 + 5 * day) == t0 + 19 * day
    assert store.covered_until("prices", "BTC", "1d", "x", "BTC/USDT", t0 - day) is None  # earlier start: not covered
    assert store.covered_until("prices", "BTC", "1d", "x", "OTHER", t0) is None


def test_two_store_objects_on_one_folder_see_each_other(tmp_path, frames):
    market, _ = frames
    a, b = DataStore(tmp_path), DataStore(tmp_path)
    a.upsert_market("BTC", "1d", market.iloc[:25], "demo")
    b.upsert_market("BTC", "1d", market.iloc[25:], "demo")
    pd.testing.assert_frame_equal(a.market("BTC", "1d"), market)
    a.close()
    b.close()


def test_default_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYPTORL_DATA", str(tmp_path / "env-store"))
    with DataStore() as s:
        assert s.root == tmp_path / "env-store" and s.prices_path.exists() and s.metrics_path.exists()


# ------------------------------------------------------------------ load_data
def test_load_data_sources(tmp_path, frames):
    market, metrics = frames
    m, _ = load_data("BTC", "1d", START, END)  # demo
    pd.testing.assert_frame_equal(m, market)
    with DataStore(tmp_path) as s:
        s.upsert_market("BTC", "1d", market, "demo")
        s.upsert_metrics("BTC", "1d", metrics, "demo")
    m2, x2 = load_data("BTC", "1d", "2021-01-05", "2021-01-20", source="store", store=tmp_path)
    pd.testing.assert_frame_equal(m2, market.loc["2021-01-05":"2021-01-20"], check_freq=False)
    assert x2.index.equals(m2.index) and x2.shape[1] == metrics.shape[1]
    with pytest.raises(ValueError, match="binance downloads bars: fill the store first"):
        load_data("BTC", source="binance")
    with pytest.raises(ValueError, match="unknown source 'yahoo': use one of demo, store, csv:PATH"):
        load_data("BTC", source="yahoo")
    with pytest.raises(DataError, match=r"\[LINK\] no 1d market data"):
        load_data("LINK", source="store", store=tmp_path)


# ------------------------------------------------------------------ property: any split, any order
_BASE_MARKET, _BASE_METRICS = demo_data("ETH", "1d", "2021-03-01", "2021-03-24")


@settings(max_examples=12, deadline=None)
@given(
    cuts=st.lists(st.integers(1, len(_BASE_MARKET) - 1), max_size=4, unique=True),
    order=st.randoms(use_true_random=False),
    overlap=st.integers(0, 3),
    again=st.booleans(),
)
def test_upserting_any_split_in_any_order_gives_the_same_store(cuts, order, overlap, again):
    bounds = [0, *sorted(cuts), len(_BASE_MARKET)]
    pieces = [(max(0, a - overlap), b) for a, b in itertools.pairwise(bounds)]  # overlapping pieces
    order.shuffle(pieces)
    with tempfile.TemporaryDirectory() as d, DataStore(d) as s:
        for a, b in pieces:
            s.upsert_market("ETH", "1d", _BASE_MARKET.iloc[a:b], "demo")
            s.upsert_metrics("ETH", "1d", _BASE_METRICS.iloc[a:b], "demo")
        pd.testing.assert_frame_equal(s.market("ETH", "1d"), _BASE_MARKET)
        pd.testing.assert_frame_equal(
            s.metrics("ETH", "1d"), _BASE_METRICS[sorted(_BASE_METRICS.columns)], check_freq=False
        )
        if again:  # any piece again changes nothing
            a, b = pieces[0]
            assert s.upsert_market("ETH", "1d", _BASE_MARKET.iloc[a:b], "demo") == 0
            assert s.upsert_metrics("ETH", "1d", _BASE_METRICS.iloc[a:b], "demo") == 0
