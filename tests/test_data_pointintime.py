"""Point in time: a metric value is used only from the bar whose close comes after it was known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptorl.data import align_metrics, load_data
from cryptorl.data.pointintime import DEFAULT_DELAY, as_known
from cryptorl.data.store import DataStore


def utc(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def _daily(days: int = 20, seed: int = 0) -> pd.DataFrame:
    idx = pd.date_range("2021-01-01", periods=days, freq="D", tz="UTC", name="time")
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=days), "b": rng.normal(size=days)}, index=idx)


def _bars(interval: str, days: int = 20) -> pd.DatetimeIndex:
    return pd.date_range(
        "2021-01-01", periods=days * pd.Timedelta("1D") // pd.Timedelta(interval), freq=interval, tz="UTC", name="time"
    )


def test_hand_computed_first_use():
    m = _daily()
    # 6h bars, delay 6h: day D is known at D+1 06:00, so the bar opening D+1 00:00 (closing 06:00) uses it
    six = align_metrics(as_known(m, "6h", delay="6h"), _bars("6h"))
    assert np.isnan(six.loc[utc("2021-01-01 18:00"), "a"])
    assert six.loc[utc("2021-01-02 00:00"), "a"] == m.loc[utc("2021-01-01"), "a"]
    assert six.loc[utc("2021-01-02 18:00"), "a"] == m.loc[utc("2021-01-01"), "a"]
    assert six.loc[utc("2021-01-03 00:00"), "a"] == m.loc[utc("2021-01-02"), "a"]
    # 1h bars, delay 0: known at D+1 00:00, the bar opening D 23:00 uses it
    one = align_metrics(as_known(m, "1h", delay="0h"), _bars("1h"))
    assert np.isnan(one.loc[utc("2021-01-01 22:00"), "a"])
    assert one.loc[utc("2021-01-01 23:00"), "a"] == m.loc[utc("2021-01-01"), "a"]
    # daily bars: delay 0 -> the bar of day D (decided at its close) uses day D; any delay -> day D+1
    day = align_metrics(as_known(m, "1d", delay="0h"), _bars("1d"))
    assert day.loc[utc("2021-01-05"), "a"] == m.loc[utc("2021-01-05"), "a"]
    day = align_metrics(as_known(m, "1d"), _bars("1d"))
    assert day.loc[utc("2021-01-05"), "a"] == m.loc[utc("2021-01-04"), "a"]
    assert DEFAULT_DELAY > pd.Timedelta(0)


@settings(max_examples=60, deadline=None)
@given(
    interval=st.sampled_from(["1h", "4h", "6h", "12h", "1d"]),
    cut=st.integers(0, 400),
    delay_h=st.sampled_from([0, 1, 6, 30]),
    seed=st.integers(0, 10),
)
def test_moving_metric_values_not_known_at_t_changes_nothing_decided_at_or_before_t(interval, cut, delay_h, seed):
    bars = _bars(interval)
    t = bars[min(cut, len(bars) - 1)]
    decided = t + pd.Timedelta(interval)  # the bar at t is decided at its close
    m = _daily(seed=seed)
    # every value whose day has not closed (or not been published) by the decision time moves
    unknown = m.index + pd.Timedelta("1D") + pd.Timedelta(hours=delay_h) > decided
    moved = m.copy()
    moved.loc[unknown] = moved.loc[unknown] * -3.0 + 7.0
    a = align_metrics(as_known(m, interval, delay=pd.Timedelta(hours=delay_h)), bars)
    b = align_metrics(as_known(moved, interval, delay=pd.Timedelta(hours=delay_h)), bars)
    pd.testing.assert_frame_equal(a.loc[:t], b.loc[:t])
    if unknown.any() and (~unknown).any():  # and the values known are used: the last one known, at t
        assert a.loc[t, "a"] == m.loc[~unknown, "a"].iloc[-1]


def test_load_data_serves_metrics_point_in_time_on_6h_bars(tmp_path):
    st_ = DataStore(tmp_path)
    idx = _bars("6h", 10)
    market = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}, index=idx)
    st_.upsert_market("BTC", "6h", market, "file:x")
    m = _daily(10)
    st_.upsert_metrics("BTC", "6h", m, "file:y")
    _, got = load_data("BTC", "6h", source="store", store=st_)
    aligned = align_metrics(got, idx)
    assert np.isnan(aligned.loc[utc("2021-01-01 18:00"), "a"])
    assert aligned.loc[utc("2021-01-02 00:00"), "a"] == m.loc[utc("2021-01-01"), "a"]  # default delay 6h
    _, got0 = load_data("BTC", "6h", source="store", store=st_, metrics_delay="0h")
    assert align_metrics(got0, idx).loc[utc("2021-01-01 18:00"), "a"] == m.loc[utc("2021-01-01"), "a"]
    # demo metrics are known at their bar's close already: not shifted
    st_.upsert_metrics("BTC", "6h", pd.DataFrame({"d": np.arange(len(idx), dtype=float)}, index=idx), "demo")
    _, got = load_data("BTC", "6h", source="store", store=st_)
    assert align_metrics(got, idx)["d"].tolist() == list(range(len(idx)))
    with pytest.raises(ValueError, match="negative"):
        load_data("BTC", "6h", source="store", store=st_, metrics_delay="-1h")
    st_.close()


def test_dru_features_at_or_before_t_ignore_metric_values_not_known_at_t(tmp_path):
    """The whole path: files -> store -> load_data -> DRU, on 6h bars with daily metrics."""
    from cryptorl.features import DataRefinementUnit

    idx = _bars("6h", 160)
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, len(idx))))
    market = pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1.0}, index=idx
    )
    days = pd.date_range(idx[0], idx[-1], freq="D", name="time")
    metrics = pd.DataFrame(rng.normal(size=(len(days), 4)), index=days, columns=list("abcd"))
    t = utc("2021-04-10 12:00")  # decided at 18:00: days up to 04-09 are known (delay 6h), 04-10 is not
    moved = metrics.copy()
    moved.loc["2021-04-10":] = rng.normal(size=moved.loc["2021-04-10":].shape) * 50
    feats = []
    for i, m in enumerate((metrics, moved)):
        st_ = DataStore(tmp_path / str(i))
        st_.upsert_market("BTC", "6h", market, "file:m")
        st_.upsert_metrics("BTC", "6h", m, "file:x")
        mk, mx = load_data("BTC", "6h", source="store", store=st_)
        dru = DataRefinementUnit().fit(mk, mx, train_end="2021-03-31", asset="BTC")
        feats.append(dru.transform(mk, mx))
        st_.close()
    a, b = feats
    pd.testing.assert_frame_equal(a.loc[:t], b.loc[:t])
    assert not a.loc[t + pd.Timedelta("6h") :].equals(b.loc[t + pd.Timedelta("6h") :])  # and the later rows do see them
