"""Trend-timing baseline and market features: hand-computed cases and no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptorl.portfolio import backtest, trend_name, trend_timing
from envs.features import market_features, parse_market_feature


def market_frame(close, start="2022-01-01") -> pd.DataFrame:
    close = np.asarray(close, dtype=float)
    idx = pd.date_range(start, periods=len(close), freq="1D", tz="UTC", name="time")
    return pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1.0}, index=idx
    )


def test_trend_timing_hand_computed():
    # SMA3 of A: -, -, 2, 3, 3.333, 2.667; close > SMA at bars 2 (3 > 2) and 3 (4 > 3) only.
    a = market_frame([1, 2, 3, 4, 3, 1])
    b = market_frame([5, 4, 3, 2, 1, 2])  # SMA3: -, -, 4, 3, 2, 1.667: above at bar 5 only
    w = trend_timing({"A": a, "B": b}, sma=3)
    np.testing.assert_allclose(w["A"], [0, 0, 0.5, 0.5, 0, 0])
    np.testing.assert_allclose(w["B"], [0, 0, 0, 0, 0, 0.5])
    np.testing.assert_allclose(w["cash"], 1 - w["A"] - w["B"])
    assert trend_name(3) == "Trend SMA3"


def test_trend_timing_warms_up_on_history_before_start():
    a = market_frame([1, 2, 3, 4, 5, 6])
    w = trend_timing({"A": a}, sma=3, start="2022-01-04")
    assert list(w["A"]) == [1.0, 1.0, 1.0]  # the average of 3 closes exists from the first kept bar


def test_trend_timing_backtests_like_holding_when_always_above():
    a = market_frame(np.linspace(1, 2, 40))  # rising: close above its SMA from bar 19 on
    markets = {"A": a}
    res = backtest(trend_timing(markets, sma=20, start="2022-01-21"), markets, interval="1d", fee=0.0)
    assert res.values.iloc[-1] == pytest.approx(a["close"].iloc[-1] / a["close"].loc["2022-01-21"])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.5, 2.0), min_size=30, max_size=30), st.integers(5, 28))
def test_trend_timing_and_market_features_ignore_the_future(steps, t):
    close = np.cumprod(steps)
    a = market_frame(close)
    b = a.copy()
    b.iloc[t + 1 :, :4] *= 3.0  # a different future after bar t
    wa, wb = trend_timing({"A": a}, sma=4), trend_timing({"A": b}, sma=4)
    pd.testing.assert_frame_equal(wa.iloc[: t + 1], wb.iloc[: t + 1])
    names = ["ret_3", "vol_4", "dd_5", "sma_4"]
    fa, fb = market_features(a, names), market_features(b, names)
    pd.testing.assert_frame_equal(fa.iloc[: t + 1], fb.iloc[: t + 1])


def test_market_features_hand_computed():
    m = market_frame([1.0, 2.0, 4.0, 2.0])
    f = market_features(m, ["ret_2", "vol_2", "dd_2", "sma_2"])
    ln2 = np.log(2.0)
    np.testing.assert_allclose(f["ret_2"], [np.nan, np.nan, np.log(4), 0.0])
    np.testing.assert_allclose(f["vol_2"], [np.nan, np.nan, 0.0, np.std([ln2, -ln2], ddof=1)])
    np.testing.assert_allclose(f["dd_2"], [np.nan, np.log(2 / 2.02), np.log(4 / 4.04), np.log(2 / 4.04)])
    np.testing.assert_allclose(f["sma_2"], [np.nan, np.log(2 / 1.5), np.log(4 / 3), np.log(2 / 3)])


@pytest.mark.parametrize("name", ["ret", "ret_1", "foo_5", "sma_x", ""])
def test_bad_market_feature_names_are_refused(name):
    with pytest.raises(ValueError, match="unknown market feature"):
        parse_market_feature(name)
